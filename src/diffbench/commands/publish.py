"""``diffbench publish NAME --out DIR``: a Hub-ready dataset repo folder from a build.

    diffbench build vismin --config all --source sample
    diffbench publish vismin --out vismin-hub             # parquet shards + README.md card
    diffbench publish vismin --out vismin-hub --push you/vismin   # and upload it (needs a token)

``load_dataset("vismin-hub")`` then gives the same rows as the build; after ``--push``,
``load_dataset("you/vismin")`` does too. ``--out`` must be a new or empty folder, or, with
``--overwrite``, one an earlier publish wrote (it holds ``.diffbench-publish``): then the files that
publish wrote are replaced and whatever else is there (a ``.git``, notes) is kept.
"""

from __future__ import annotations

import math
from pathlib import Path

from diffbench.text import printable


def parse_bytes(text: str) -> int:
    """``"500MB"`` -> ``500_000_000``; plain numbers are bytes.

        >>> parse_bytes("1.5KB")
        1500
        >>> parse_bytes("1e400")
        Traceback (most recent call last):
        ...
        ValueError: --max-shard-size must be a finite size like 500MB, got '1e400'
    """
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    upper = text.strip().upper()
    for unit, factor in units.items():
        if upper.endswith(unit):
            number = upper[: -len(unit)].strip()
            break
    else:
        number, factor = upper, 1
    try:
        value = float(number) * factor
    except ValueError:
        raise ValueError(f"--max-shard-size must look like 500MB, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"--max-shard-size must be a finite size like 500MB, got {text!r}")
    if int(value) <= 0:
        raise ValueError(f"--max-shard-size must be at least one byte, got {text!r}")
    return int(value)


def add_parser(subparsers) -> None:
    from diffbench.data.hub_folders import available

    parser = subparsers.add_parser("publish", help="write a built dataset as parquet shards + dataset card")
    parser.add_argument("name", choices=available("datasets"), help="dataset folder under datasets/")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (the dataset repo)")
    parser.add_argument("--config", action="append", default=None,
                        help="configuration to publish (repeatable; default: every built one)")
    # read in run(), not by argparse: a bad size is then one line (exit 2), not a usage screen
    parser.add_argument("--max-shard-size", default="500MB", help="largest parquet shard (default: 500MB)")
    parser.add_argument("--overwrite", action="store_true",
                        help="in an --out folder that an earlier publish wrote, replace what it wrote and keep the "
                             "rest (never any other folder)")
    parser.add_argument("--push", metavar="REPO_ID", default=None, help="upload to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="create the --push repo as private")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench.data import publishing

    max_shard_bytes = parse_bytes(args.max_shard_size)
    if args.push:
        publishing.check_online()  # before the work, not after it
    folder = publishing.publish(args.name, args.out, args.config, max_shard_bytes, args.overwrite)
    written = sorted(publishing.published_files(folder))
    size = sum((folder / name).stat().st_size for name in written)
    print(f"{args.name}: {len(written)} files, {size / 1e6:.1f} MB -> {folder}")
    for name in written:
        print(f"  {name}")
    kept = publishing.foreign_entries(folder, set(written))
    if kept:
        print(f"  kept, not written by publish: {printable(', '.join(kept))}")
    if args.push:
        print(f"pushed: {publishing.push(folder, args.push, private=args.private)}")
    return 0
