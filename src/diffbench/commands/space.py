"""``diffbench space [--port N] [--share]``: run the demo Space locally.

    diffbench space                 # http://127.0.0.1:7860 (or the next free port)
    diffbench space --port 8000     # a given port
    diffbench space --share         # also a temporary public *.gradio.live link (needs the network)

The same app as the Hugging Face Space in ``space/`` (:mod:`diffbench.space.app`). Datasets that are
not built yet are built from the embedded samples first, so it runs offline on a fresh machine.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("space", help="run the demo Space (Gradio) locally")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: 7860 or the next free one)")
    parser.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    parser.set_defaults(func=run)


def run(args) -> int:
    import logging

    from diffbench.space.app import build_demo, launch  # without gradio: the CLI names the [space] extra

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    launch(build_demo(), port=args.port, share=args.share, server_name=args.host)
    return 0
