"""Build throughput and peak memory of the Spot-the-Diff builder, against merely reading the source.

    .venv/bin/python bench/bench_build_captions.py                  # 13,192 pairs of 224x224 PNGs
    .venv/bin/python bench/bench_build_captions.py --pairs 2000     # a quicker run
    .venv/bin/python bench/bench_build_captions.py --num-proc 2     # also a build over two processes
    .venv/bin/python bench/bench_build_captions.py --before DIR     # also the builder of another checkout
                                                               # (e.g. `git archive <commit> | tar -x -C DIR`)

It writes a Spot-the-Diff-sized release in the official layout (``data/annotations/{train,val,test}.json``,
``data/resized_images/<id>.png`` and ``<id>_2.png``; the PNGs are photo-like: a rendered scene under
noise, about as large as the real 224x224 frames, each file's bytes distinct), then, each in a fresh
process so that peak RSS (``ru_maxrss``) is the step's own:

- ``read``: read every annotation file and every image file once (the floor: no build can be faster
  than reading its input);
- ``copy``: read them and write every image's bytes into one file (the floor of a build that copies
  its images: the same bytes in and out, with no Arrow and no checks);
- ``decode 1 thread``: read and fully decode every image in one thread (``image_checks.image_file_problem``,
  the check every build now runs): what the checks would cost without threads;
- ``build``: ``diffbench.data.building.build("spot_the_diff", "default", source=...)`` into a scratch cache,
  which decodes every image in full (over one thread a core) before it writes;
- ``build, 1 decode thread``: the same with ``decode_threads=1``;
- ``build (before)``: with ``--before DIR``, the build of the checkout in DIR (its ``src/`` first on
  ``sys.path``), for the figures before a change.

It prints rows/s, MB/s (of image bytes) and peak RSS for each, the build/read time ratio, and checks
that the built images are the source bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from PIL import Image

from diffbench.data.synth import captions

READ = """
import json, resource, sys, time
from pathlib import Path
root = Path(sys.argv[1]) / "data"
start = time.perf_counter()
rows = nbytes = 0
for split in ("train", "val", "test"):
    ids = dict.fromkeys(e["img_id"] for e in json.loads((root / "annotations" / f"{split}.json").read_text()))
    for img_id in ids:
        nbytes += len((root / "resized_images" / f"{img_id}.png").read_bytes())
        nbytes += len((root / "resized_images" / f"{img_id}_2.png").read_bytes())
        rows += 1
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "bytes": nbytes, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COPY = READ.replace("nbytes = 0", "nbytes = 0\nout = open(sys.argv[2], 'wb')").replace(
    "nbytes += len(", "nbytes += out.write(").replace("seconds =", "out.close()\nseconds =")

DECODE = """
import json, resource, sys, time
from pathlib import Path
from diffbench.data.image_checks import image_file_problem, pixel_limits
root = Path(sys.argv[1]) / "data"
start = time.perf_counter()
rows = 0
with pixel_limits(89_478_485):
    for split in ("train", "val", "test"):
        ids = dict.fromkeys(e["img_id"] for e in json.loads((root / "annotations" / f"{split}.json").read_text()))
        for img_id in ids:
            for name in (f"{img_id}.png", f"{img_id}_2.png"):
                assert image_file_problem(str(root / "resized_images" / name)) is None
            rows += 1
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BUILD = """
import inspect, json, os, resource, sys, time
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
from diffbench.data import building
num_proc = int(sys.argv[2]) or None
options = json.loads(sys.argv[3])
building.builder_class("spot_the_diff")  # imports datasets and the builder: not build time
if "overwrite" in inspect.signature(building.build).parameters:
    options["overwrite"] = True
start = time.perf_counter()
summary = building.build("spot_the_diff", "default", num_proc=num_proc, source=sys.argv[1], **options)
seconds = time.perf_counter() - start
ds = building.load_built("spot_the_diff", None, "test")
from datasets import Image
row = ds.cast_column("image_after", Image(decode=False))[0]
same = row["image_after"]["bytes"] == (
    __import__("pathlib").Path(sys.argv[1]) / "data/resized_images" / f"{row['id']}_2.png").read_bytes()
print(json.dumps({"rows": sum(summary.rows.values()), "seconds": seconds, "arrow_bytes": summary.num_bytes,
                  "byte_exact": same,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _photo_like_pngs(count: int, seed: int = 0) -> list[bytes]:
    """``count`` 224x224 PNGs: a rendered scene with sensor-like noise (realistic PNG sizes)."""
    rng = random.Random(seed)
    pool = []
    for pair in captions.generate_pairs(n=count, seed=seed, image_size=(224, 224)):
        image = Image.open(io.BytesIO(pair["before"])).convert("RGB")
        noise = Image.effect_noise((224, 224), rng.choice((18, 24, 30))).convert("RGB")
        blended = Image.blend(image, noise, 0.25)
        buffer = io.BytesIO()
        blended.save(buffer, format="PNG")
        pool.append(buffer.getvalue())
    return pool


def _distinct(png: bytes, name: str) -> bytes:
    """The same picture, bytes unique to ``name`` (a tEXt chunk after IHDR)."""
    data = b"Comment\0" + name.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:33] + chunk + png[33:]


def write_release(root: Path, pairs: int) -> int:
    """A Spot-the-Diff-sized release in the official layout; returns the image bytes written."""
    pool = _photo_like_pngs(64)
    images = root / "data" / "resized_images"
    images.mkdir(parents=True)
    (root / "data" / "annotations").mkdir()
    rng = random.Random(1)
    splits = {"train": [], "val": [], "test": []}
    total = 0
    for index in range(pairs):
        img_id = str(index)
        for name in (f"{img_id}.png", f"{img_id}_2.png"):
            blob = _distinct(pool[rng.randrange(len(pool))], name)
            (images / name).write_bytes(blob)
            total += len(blob)
        split = "train" if index < 0.8 * pairs else "val" if index < 0.9 * pairs else "test"
        splits[split].append({"img_id": img_id, "sentences": ["the white car is gone"]})
        if index % 4 == 0:  # some pairs spread over two entries, as upstream
            splits[split].append({"img_id": img_id, "sentences": ["a person walked into the parking lot"]})
    for split, entries in splits.items():
        (root / "data" / "annotations" / f"{split}.json").write_text(json.dumps(entries))
    return total


def run_child(code: str, *args: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=13_192)
    parser.add_argument("--num-proc", type=int, default=0, help="also build with this many processes")
    parser.add_argument("--before", type=Path, help="also build with the checkout in this folder (its src/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-captions-") as scratch:
        root = Path(scratch) / "spot_the_diff"
        started = time.perf_counter()
        image_bytes = write_release(root, args.pairs)
        print(f"source: {args.pairs:,} pairs, {image_bytes / 1e6:,.0f} MB of PNGs "
              f"({image_bytes / (2 * args.pairs) / 1e3:.0f} kB an image), written in {time.perf_counter() - started:.0f} s")
        env = {**os.environ, "HF_HOME": str(Path(scratch) / "hf"), "HF_HUB_OFFLINE": "1"}
        results = {"read": run_child(READ, str(root), env=env)}
        results["copy"] = run_child(COPY, str(root), str(Path(scratch) / "copy.bin"), env=env)
        (Path(scratch) / "copy.bin").unlink()
        results["decode 1 thread"] = run_child(DECODE, str(root), env=env)
        if args.before:
            before_env = {**env, "PYTHONPATH": str(args.before.resolve() / "src")}
            results["build (before)"] = run_child(BUILD, str(root), "0", "{}", env=before_env)
        results["build"] = run_child(BUILD, str(root), "0", "{}", env=env)
        results["build, 1 decode thread"] = run_child(BUILD, str(root), "0", '{"decode_threads": 1}', env=env)
        if args.num_proc > 1:
            results[f"build --num-proc {args.num_proc}"] = run_child(BUILD, str(root), str(args.num_proc), "{}", env=env)
        floor = results["read"]["seconds"]
        print(f"{'step':<22}{'rows':>8}{'seconds':>9}{'rows/s':>9}{'MB/s':>8}{'x read':>8}{'peak RSS MB':>13}")
        for step, r in results.items():
            print(f"{step:<22}{r['rows']:>8,}{r['seconds']:>9.2f}{r['rows'] / r['seconds']:>9,.0f}"
                  f"{image_bytes / r['seconds'] / 1e6:>8,.0f}{r['seconds'] / floor:>8.1f}{r['peak_rss_mb']:>13,.0f}")
        print(f"cores this process may use: {len(os.sched_getaffinity(0))}")
        build = results["build"]
        print(f"arrow written: {build['arrow_bytes'] / 1e6:,.0f} MB; images byte-exact: {build['byte_exact']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
