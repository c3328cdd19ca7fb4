"""``diffbench eval TASK --model ID_OR_PATH``: run a Hugging Face model on a benchmark and score it.

    diffbench eval vismin                      # the embedded tiny CLIP, on the built bench
    diffbench eval vismin --model openai/clip-vit-base-patch32 --out runs/clip-b32
    diffbench eval vismin --model llava-hf/llava-v1.6-mistral-7b-hf --image-handling combined \\
        --max-new-tokens 64 --out runs/llava      # the paper's protocol: generate, lenient parser
    diffbench eval vismin --preset "Idefics2"  # a published row with the paper's settings
    diffbench eval spot_the_diff --model llava-hf/llava-1.5-7b-hf --out runs/std-llava
    accelerate launch --num_processes 8 -m diffbench eval vismin --model ...   # several GPUs

``diffbench list tasks`` names the tasks. VisMin takes contrastive models (CLIP, SigLIP, anything with
``get_image_features`` and ``get_text_features``; float32 unless ``--dtype`` says otherwise, as the
official code) and chat models (``AutoModelForImageTextToText``: greedy generation read by the official
lenient parser, or ``--answer likelihood``); the difference-captioning tasks take chat models.
``--out`` receives the official submission file, ``results.json``, ``results.md``, ``results.png``
and ``run.json`` (the protocol, versions, weights and data fingerprints); the same command again resumes.
Files of those names that diffbench did not write there are refused before any work (``--overwrite``
replaces them); the submission file and the report move in as one set (:mod:`diffbench.files`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffbench.commands._arguments import add_uncertainty_arguments
from diffbench.harness.options import ANSWER_MODES, DTYPES, IMAGE_HANDLING, parse_limit


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a Hugging Face model on a benchmark",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("name", metavar="TASK", help="vismin, or a difference-captioning dataset (omnidiff, "
                        "spot_the_diff, clevr_change, clevr_dc, image_editing_request): `diffbench list tasks`")
    parser.add_argument("--model", default=None,
                        help="Hub model id or local folder (default: the embedded tiny CLIP, diffbench-tiny-clip)")
    parser.add_argument("--preset", default=None,
                        help="a published VisMin row's model and settings (`diffbench list presets`); "
                             "options given beside it override it")
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    parser.add_argument("--config", default=None, help="dataset configuration (default: the dataset's default)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--data-files", nargs="+", type=Path, default=None,
                        help="score these parquet files (or a save_to_disk folder, the upstream release's "
                             "included) instead of the built dataset")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/TASK-MODEL)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples a batch (default: 64 contrastive, 4 chat); halves by itself when out of GPU memory")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default=None, choices=DTYPES,
                        help="default: the preset's, else auto: float32 for contrastive models (as the official "
                             "code), the dtype a chat model's config names (float32 on the CPU when that is a "
                             "half precision); run.json's settings say which and where it came from")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="image-decoding worker processes (default: the cores, shared by the processes)")
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode JPEGs at a reduced scale that still covers the model's input size (faster, "
                             "pixels close to but not identical to a full decode)")
    chat = parser.add_argument_group("chat models")
    chat.add_argument("--answer", choices=ANSWER_MODES, default=None,
                      help="VisMin: generate and read the answer with the official lenient parser (default, the "
                           "paper's protocol), or compare the options' log-likelihoods")
    chat.add_argument("--max-new-tokens", type=int, default=None,
                      help="generated tokens at most (default 128, as the paper's evaluation asks)")
    chat.add_argument("--image-handling", choices=IMAGE_HANDLING, default=None,
                      help="two images as two inputs (separate, default) or pasted side by side into one "
                           "(combined: the paper's LLaVA-1.6)")
    chat.add_argument("--image-splitting", dest="image_splitting", action=argparse.BooleanOptionalAction,
                      default=None,
                      help="turn the processor's image splitting (Idefics2 and others that have it) on or off; by "
                           "default as the processor says, or as the preset's row ran (Idefics2: off, as in the "
                           "paper); run.json's settings say which and where it came from")
    chat.add_argument("--prompt-template", default=None,
                      help="a raw prompt instead of the chat template, with {images} and {question}: the paper's "
                           "LLaVA-1.6 used '{images} [INST] {question} [/INST]'")
    chat.add_argument("--prompt", default=None,
                      help="difference-captioning instruction (default: the task's own, which run.json and "
                           "results.md record)")
    api = parser.add_argument_group("OpenAI-compatible chat APIs (GPT-4o, Gemini, vLLM, TGI, transformers serve)")
    api.add_argument("--api-base", default=None,
                     help="ask this endpoint (e.g. https://api.openai.com/v1) instead of loading --model; "
                          "--model is then the API's model name")
    api.add_argument("--api-key-env", default=None,
                     help="environment variable holding the API key (default OPENAI_API_KEY); never logged or written")
    api.add_argument("--concurrency", type=int, default=4, help="API requests in flight (default 4)")
    parser.add_argument("--limit", type=limit_value, default=None, metavar="N",
                        help="a quick look: N samples (20), or a fraction of them (0.1), drawn stratified by "
                             "VisMin's category or the captions' change types (each present once N allows, the "
                             "rest in proportion), the same on any machine; the draws are nested, so a rerun "
                             "over the same --out with a larger limit (or none) keeps what was predicted and "
                             "runs only the new samples (a smaller one is refused)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow running code from the model's repository (off unless given)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load pickle weights (pytorch_model.bin, .pt) when there are no safetensors: "
                             "unpickling can run code, so only for checkpoints you trust")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard saved predictions in --out, and replace output files there that diffbench "
                             "did not write")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_uncertainty_arguments(parser)
    parser.set_defaults(func=run)


def limit_value(text: str):
    """``--limit``'s value (:func:`diffbench.harness.options.parse_limit`), refused in argparse's words."""
    try:
        return parse_limit(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def options_from_args(args: argparse.Namespace):
    """The run's :class:`~diffbench.harness.options.RunOptions`, resolved as the library resolves them
    (:func:`diffbench.tasks.resolve`: a ``--preset`` fills what the options beside it leave unset)."""
    from diffbench import tasks
    from diffbench.harness.options import RunOptions

    return tasks.resolve(RunOptions(
        model=args.model, out=args.out, task=args.name, config=args.config, split=args.split,
        data_files=args.data_files, limit=args.limit, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, num_workers=args.num_workers, fast_decode=args.fast_decode, allow_pickle=args.allow_pickle,
        answer=args.answer, prompt=args.prompt, overwrite=args.overwrite, progress=args.progress, preset=args.preset,
        trust_remote_code=args.trust_remote_code, revision=args.revision,
        max_new_tokens=args.max_new_tokens, image_handling=args.image_handling, image_splitting=args.image_splitting,
        prompt_template=args.prompt_template, api_base=args.api_base, api_key_env=args.api_key_env,
        concurrency=args.concurrency, resamples=args.resamples, seed=args.seed))


def run(args) -> int:
    from diffbench import tasks
    from diffbench.harness import loop, outputs

    task = tasks.get(args.name)  # an unknown task is an error before anything loads
    options = options_from_args(args)
    results = loop.run(task, options)
    if results:
        out = options.out
        print((out / "results.md").read_text(encoding="utf-8"))
        files = [p for p in (*outputs.OUTPUT_FILES, outputs.RUN_FILE) if (out / p).exists()]
        print(f"wrote {out}/{{{','.join(files)}}}")
    return 0
