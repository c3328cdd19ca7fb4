"""``diffbench build NAME``: build a dataset into the HF datasets cache.

    diffbench build vismin --source sample            # the embedded synthetic sample
    diffbench build vismin --config all --source DIR  # a local upstream release, every config
    diffbench build vismin --source hub               # the official Hub repos

Afterwards ``load_dataset("vismin")`` (the default config) and ``load_dataset("vismin", "train")``
work from any directory. Building a configuration over a build from another source (another
folder, the sample, the Hub, another seed or size) is refused, naming the existing build's source,
unless ``--overwrite``. A local folder's fingerprint in the build's provenance is taken from file
names, sizes and modification times (``--fingerprint stat``, the default) or from every byte
(``--fingerprint content``).
"""

from __future__ import annotations

from diffbench.data.samples import DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIDE, check_image_size


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``; ``"96"`` -> ``(96, 96)``; sides of 16 to 4096 pixels
    (:func:`diffbench.data.samples.check_image_size`).

    >>> parse_size("96")
    (96, 96)
    """
    try:
        parts = [int(v) for v in text.lower().split("x")]
        width, height = parts * 2 if len(parts) == 1 else parts
    except ValueError:
        raise ValueError(f"image size must look like 320x240 or 96, got {text!r}") from None
    return check_image_size((width, height))


def add_parser(subparsers) -> None:
    from diffbench.data.hub_folders import available

    parser = subparsers.add_parser("build", help="build a dataset into the HF datasets cache")
    parser.add_argument("name", choices=available("datasets"), help="dataset folder under datasets/")
    parser.add_argument("--config", default=None, help="configuration to build, or 'all' (default: the default config)")
    parser.add_argument(
        "--source", default="hub", help="'hub' (official repos), 'sample' (synthetic, offline) or a local folder"
    )
    parser.add_argument("--repo-id", default=None, help="Hub repo to read with --source hub (default: the official one)")
    parser.add_argument("--n", type=int, default=None, help="samples in a synthetic --source sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic --source sample")
    # Parsed in run(), so a bad size is one line (exit 2) like every other bad input, not argparse's usage.
    parser.add_argument("--image-size", default="{}x{}".format(*DEFAULT_IMAGE_SIZE),
                        help=f"WxH of synthetic images (16 to {MAX_IMAGE_SIDE} pixels a side; default: the size "
                             "diffbench demo and the Space build, %(default)s)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) with --source hub")
    parser.add_argument("--num-proc", type=int, default=None, help="build processes (sharded over source files)")
    parser.add_argument("--fingerprint", choices=("stat", "content"), default="stat",
                        help="how a local --source is fingerprinted in the build's provenance: 'stat' (file names, "
                             "sizes and modification times; reads no byte twice) or 'content' (hashes every byte "
                             "before the build)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing build of the same config made from another source")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench.data import building

    names = building.config_names(args.name)
    configs = names if args.config == "all" else [args.config or building.default_config(args.name)]
    sample_options = {"n": args.n, "seed": args.seed, "image_size": parse_size(args.image_size)}
    for flag, value in (("--num-proc", args.num_proc), ("--n", args.n)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    summaries = building.build_configs(args.name, configs, args.source, args.num_proc, args.repo_id, args.revision,
                                       overwrite=args.overwrite, fingerprint=args.fingerprint, **sample_options)
    for summary in summaries:
        print(summary.format())
    return 0
