"""``diffbench build NAME``: build a dataset into the HF datasets cache.

    diffbench build vismin --source sample            # the embedded synthetic sample
    diffbench build vismin --config all --source DIR  # a local upstream release, every config
    diffbench build vismin --source hub               # the official Hub repos

Afterwards ``load_dataset("vismin")`` (the default config) and ``load_dataset("vismin", "train")``
work from any directory.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"image size must look like 320x240, got {text!r}") from None
    if width < 16 or height < 16:
        raise ValueError(f"image size must be at least 16x16, got {text!r}")
    return width, height


def add_parser(subparsers) -> None:
    from diffbench.hub_folders import available

    parser = subparsers.add_parser("build", help="build a dataset into the HF datasets cache")
    parser.add_argument("name", choices=available("datasets"), help="dataset folder under datasets/")
    parser.add_argument("--config", default=None, help="configuration to build, or 'all' (default: the default config)")
    parser.add_argument(
        "--source", default="hub", help="'hub' (official repos), 'sample' (synthetic, offline) or a local folder"
    )
    parser.add_argument("--repo-id", default=None, help="Hub repo to read with --source hub (default: the official one)")
    parser.add_argument("--n", type=int, default=None, help="samples in a synthetic --source sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic --source sample")
    parser.add_argument("--image-size", type=parse_size, default=(320, 240), help="WxH of synthetic images")
    parser.add_argument("--num-proc", type=int, default=None, help="build processes (sharded over source files)")
    parser.set_defaults(func=run)


def label_counts(dataset) -> dict[str, dict[str, int]]:
    """Rows per category (or per change type) for each split, for the closing summary."""
    counts = {}
    for split, ds in dataset.items():
        for column in ("category", "change_types"):
            if column not in ds.column_names:
                continue
            values = ds.select_columns([column])[column]
            feature = ds.features[column]
            if column == "change_types":
                values = [label for labels in values for label in labels]
            elif hasattr(feature, "int2str"):
                values = feature.int2str(list(values))
            counts[split] = dict(sorted(collections.Counter(values).items()))
            break
    return counts


def build_configs(name: str, configs: list[str], source: str, num_proc=None, repo_id=None, **sample_options):
    """Build each config from one source; a ``sample`` source is generated once into a temp folder."""
    from diffbench import building, samples

    summaries = []
    with tempfile.TemporaryDirectory(prefix=f"diffbench-{name}-sample-") as scratch:
        if source == "sample":
            source = str(samples.write_sample(name, Path(scratch), **sample_options))
        kwargs = {"source": source}
        if repo_id:
            kwargs["repo_id"] = repo_id
        for config in configs:
            summary = building.build(name, config, num_proc=num_proc, **kwargs)
            summary.counts = label_counts(building.load_built(name, config))
            summaries.append(summary)
    return summaries


def run(args) -> int:
    from diffbench import building

    names = building.config_names(args.name)
    configs = names if args.config == "all" else [args.config or building.default_config(args.name)]
    sample_options = {"n": args.n, "seed": args.seed, "image_size": args.image_size}
    for summary in build_configs(args.name, configs, args.source, args.num_proc, args.repo_id, **sample_options):
        print(summary.format())
    return 0
