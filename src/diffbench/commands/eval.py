"""``diffbench eval NAME --model ID_OR_PATH``: run a Hugging Face model on a benchmark and score it.

    diffbench eval vismin                      # the embedded tiny CLIP, on the built bench
    diffbench eval vismin --model openai/clip-vit-base-patch32 --out runs/clip-b32
    diffbench eval vismin --model llava-hf/llava-1.5-7b-hf --answer likelihood --out runs/llava
    diffbench eval spot_the_diff --model llava-hf/llava-1.5-7b-hf --out runs/std-llava
    accelerate launch --num_processes 8 -m diffbench eval vismin --model ...   # several GPUs

VisMin takes contrastive models (CLIP, SigLIP, SigLIP 2, anything with ``get_image_features`` and
``get_text_features``) and chat models (``AutoModelForImageTextToText``); the difference-captioning
sets take chat models. ``--out`` receives the official submission file, ``results.json``,
``results.md`` and ``results.png``; running the same command again resumes from what it saved.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.harness.captioning import DEFAULT_PROMPT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a Hugging Face model on a benchmark",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="vismin, or a difference-captioning dataset (omnidiff, spot_the_diff, ...)")
    parser.add_argument("--model", default=None,
                        help="Hub model id or local folder (default: the embedded tiny CLIP, diffbench-tiny-clip)")
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    parser.add_argument("--config", default=None, help="dataset configuration (default: the dataset's default)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--data-files", nargs="+", type=Path, default=None,
                        help="score these parquet files (or a save_to_disk folder) instead of the built dataset")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/NAME-MODEL)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples a batch (default: 64 contrastive, 4 chat); halves by itself when out of GPU memory")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                        help="auto: bfloat16 (else float16) on CUDA, float32 elsewhere")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="image-decoding worker processes (default: the cores, shared by the processes)")
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode JPEGs at a reduced scale that still covers the model's input size (faster, "
                             "pixels close to but not identical to a full decode)")
    parser.add_argument("--answer", choices=["likelihood", "generate"], default="likelihood",
                        help="chat models on VisMin: compare the options' log-likelihoods, or generate and parse")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generated tokens (default: 16 for VisMin answers, 128 for captions)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help=f"difference-captioning prompt (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples (a quick look)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow running code from the model's repository (off unless given)")
    parser.add_argument("--overwrite", action="store_true", help="discard saved predictions in --out")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(func=run)


def default_out(name: str, model: str) -> Path:
    return Path("runs") / f"{name}-{Path(model.rstrip('/')).name or 'model'}"


def run(args) -> int:
    from diffbench.default_model import DEFAULT_MODEL_NAME, default_model_path
    from diffbench.harness import vismin

    model = args.model or str(default_model_path())
    out = args.out or default_out(args.name, args.model or DEFAULT_MODEL_NAME)
    common = dict(model=model, out=out, split=args.split, batch_size=args.batch_size, device=args.device,
                  dtype=args.dtype, num_workers=args.num_workers, fast_decode=args.fast_decode,
                  trust_remote_code=args.trust_remote_code, revision=args.revision, limit=args.limit,
                  overwrite=args.overwrite, progress=args.progress, data_files=args.data_files)
    if args.name == "vismin":
        options = vismin.EvalOptions(config=args.config or "bench", answer=args.answer,
                                     max_new_tokens=args.max_new_tokens or 16, **common)
        results = vismin.run(options)
        if results:
            print((out / "results.md").read_text(encoding="utf-8"))
            print(f"wrote {out}/{{{vismin.SUBMISSION_FILES[results['model_kind']]},results.json,results.md,results.png}}")
        return 0
    from diffbench.harness import captioning

    options = captioning.CaptionOptions(name=args.name, config=args.config, prompt=args.prompt,
                                        max_new_tokens=args.max_new_tokens or 128, **common)
    results = captioning.run(options)
    if results:
        print((out / "results.md").read_text(encoding="utf-8"))
        print(f"wrote {out}/{{captions.json,results.json,results.md,results.png}}")
    return 0
