"""``diffbench publish NAME --out DIR``: a Hub-ready dataset repo folder from a build.

    diffbench build vismin --config all --source sample
    diffbench publish vismin --out vismin-hub             # parquet shards + README.md card
    diffbench publish vismin --out vismin-hub --push you/vismin   # and upload it (needs a token)

``load_dataset("vismin-hub")`` then gives the same rows as the build; after ``--push``,
``load_dataset("you/vismin")`` does too. ``--out`` must be a new or empty folder, or, with
``--overwrite``, one an earlier publish wrote (it holds ``.diffbench-publish``).
"""

from __future__ import annotations

from pathlib import Path


def parse_bytes(text: str) -> int:
    """``"500MB"`` -> ``500_000_000``; plain numbers are bytes."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    upper = text.strip().upper()
    for unit, factor in units.items():
        if upper.endswith(unit):
            number = upper[: -len(unit)].strip()
            break
    else:
        number, factor = upper, 1
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise ValueError(f"size must look like 500MB, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return value


def add_parser(subparsers) -> None:
    from diffbench.hub_folders import available

    parser = subparsers.add_parser("publish", help="write a built dataset as parquet shards + dataset card")
    parser.add_argument("name", choices=available("datasets"), help="dataset folder under datasets/")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (the dataset repo)")
    parser.add_argument("--config", action="append", default=None,
                        help="configuration to publish (repeatable; default: every built one)")
    parser.add_argument("--max-shard-size", type=parse_bytes, default="500MB", help="largest parquet shard")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --out folder that an earlier publish wrote (never any other folder)")
    parser.add_argument("--push", metavar="REPO_ID", default=None, help="upload to this Hub dataset repo")
    parser.add_argument("--private", action="store_true", help="create the --push repo as private")
    parser.set_defaults(func=run)


def run(args) -> int:
    from diffbench import publishing

    folder = publishing.publish(args.name, args.out, args.config, args.max_shard_size, args.overwrite)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    print(f"{args.name}: {len(files)} files, {size / 1e6:.1f} MB -> {folder}")
    for path in files:
        print(f"  {path.relative_to(folder)}")
    if args.push:
        print(f"pushed: {publishing.push(folder, args.push, private=args.private)}")
    return 0
