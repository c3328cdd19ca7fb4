"""``diffbench train``: VisMin-style hard-negative contrastive fine-tuning of a CLIP-like model.

    diffbench build vismin --config all --source sample --n 2000 --image-size 96x72
    diffbench train --model openai/clip-vit-base-patch32 --data vismin:pairs --epochs 1 --out runs/clip-vismin
    diffbench train --model tiny-clip --data vismin:pairs --epochs 20 --eval vismin:bench   # from scratch
    accelerate launch -m diffbench train --model ...                                        # several GPUs

Each batch holds both images and both captions of every minimal-change pair it contains (each pair is
the other's hard negative); ``--no-hard-negatives`` is the ablation that puts the halves of a pair into
different batches. A progress bar shows the steps; a checkpoint is saved at the end of every epoch
(``--resume`` continues it). The result is saved with ``save_pretrained`` (safetensors) with its
processor and a ``training_log.json``; at the end the model is scored on a held-out synthetic VisMin
bench (or ``--eval NAME:CONFIG``, a built one; ``--eval none`` skips it) by the ``vismin_group_score``
metric, into ``eval.json``.

Everything that can refuse the run does so before the first step, in one line (exit 2): a model folder that
does not exist, a Hub model that is not cached while the Hub cannot be reached, a damaged checkpoint. A
loss that stops being finite (too high a ``--lr`` or ``--weight-decay``) stops the run with exit 2 and
saves no model.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.training.loop import train
from diffbench.training.settings import HELD_OUT, TINY_CLIP, TrainConfig


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="hard-negative contrastive fine-tuning on minimal-change pairs")
    parser.add_argument("--model", required=True,
                        help=f"Hub id or folder of a CLIP-like model, or {TINY_CLIP!r} for a fresh tiny CLIP trained from scratch")
    parser.add_argument("--data", default="vismin:pairs", help="built dataset NAME:CONFIG[:SPLIT] (default: vismin:pairs)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/train-MODEL)")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the pairs (default: 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="pairs a batch, so twice as many images and captions (default: 32)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 5e-4 from scratch, 1e-5 fine-tuning)")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=0.05, help="warm-up as a fraction of the steps (cosine decay after)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (overrides --epochs)")
    parser.add_argument("--no-hard-negatives", dest="hard_negatives", action="store_false",
                        help="ablation: put the two halves of each pair into different batches")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (tiny-clip) and the batch order")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default: 0)")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"], help="with accelerate")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is there")
    parser.add_argument("--eval", default=HELD_OUT, metavar="NAME:CONFIG",
                        help=f"what to score the trained model on: {HELD_OUT!r} (default: a synthetic bench of new "
                             "scenes made for it), a built benchmark (e.g. vismin:bench), or 'none'")
    parser.add_argument("--eval-n", type=int, default=400, help="samples of the held-out synthetic bench (default: 400)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose checkpoint is in --out (one is saved at the end of every epoch)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--tiny-image-size", type=int, default=48, help="input size of a tiny-clip (default: 48)")
    parser.add_argument("--tiny-hidden-size", type=int, default=64, help="width of a tiny-clip (default: 64)")
    parser.add_argument("--tiny-layers", type=int, default=3, help="layers of each tiny-clip tower (default: 3)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load pickle weights (pytorch_model.bin, which can run code when loaded) if the model has no "
                             "safetensors; only for models you trust")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is much faster on a machine other jobs share)")
    parser.set_defaults(func=run)


def run(args) -> int:
    out = args.out or Path("runs") / f"train-{Path(str(args.model)).name}"
    config = TrainConfig(
        model=args.model, data=args.data, out=str(out), epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, hard_negatives=args.hard_negatives,
        seed=args.seed, max_steps=args.max_steps, num_workers=args.num_workers,
        mixed_precision=args.mixed_precision, cpu=args.cpu,
        eval=None if args.eval == "none" else args.eval, tiny_image_size=args.tiny_image_size,
        tiny_hidden_size=args.tiny_hidden_size, tiny_layers=args.tiny_layers, threads=args.threads,
        eval_n=args.eval_n, resume=args.resume, progress=args.progress, allow_pickle=args.allow_pickle,
    )
    config.validate()
    result = train(config)
    print(result.out)
    return 0
