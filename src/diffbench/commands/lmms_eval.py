"""``diffbench lmms-eval path``: the folder of diffbench's lmms-eval tasks, for ``--include_path``.

    lmms-eval --model llava_hf --model_args pretrained=llava-hf/llava-1.5-7b-hf,device_map=cuda:0 \\
        --tasks vismin --include_path "$(diffbench lmms-eval path)"

Six tasks, tagged ``diffbench``: ``vismin`` and the five difference-captioning sets
(:mod:`diffbench.lmms_eval_tasks`); each reads its ``diffbench build``.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("lmms-eval", help="lmms-eval task folders for VisMin and the captioning sets",
                                   description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    path = actions.add_parser("path", help="print the folder to give lmms-eval's --include_path")
    path.set_defaults(func=run)


def run(args) -> int:
    from diffbench.lmms_eval_tasks import path

    print(path())
    return 0
