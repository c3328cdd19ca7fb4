"""Build throughput and peak memory of the VisMin bench config, against merely reading the source.

    .venv/bin/python bench/bench_build_vismin.py                 # N = 2,084 at 640x480, and 10 x N
    .venv/bin/python bench/bench_build_vismin.py --scales 1      # N only
    .venv/bin/python bench/bench_build_vismin.py --scales 1 --jpeg   # JPEG images, as the real release

For each N it writes a synthetic ``mair-lab/vismin-bench`` release (``save_to_disk`` layout), then, each
in a fresh process so that peak RSS is the step's own:

- ``read``: read every source Arrow file and touch every image's bytes (the floor: no build can be
  faster than reading its input once);
- ``before``: the builder as it was at ``--before`` (a git commit; default ``e64da65``: images only
  ``verify``-ed, not decoded), run with ``download_and_prepare`` into a scratch folder;
- ``build 1 thread``: today's ``diffbench.data.building.build`` with every image fully decoded on one thread;
- ``build``: today's ``diffbench.data.building.build("vismin", "bench", source=...)``, decoding on a thread
  per core (plus the source fingerprint and the provenance record).

It prints, for each step, seconds, the ratio to ``read``, rows/s, MB/s of image bytes, peak RSS and
peak anonymous RSS.

Figures (``--scales 1 --jpeg``: 2,084 samples, 4,168 640x480 JPEGs, 40 MB) on a shared 2-core box at load
average 7-10 (other work on both cores), two runs; every figure is noisy, and threads cannot show a gain there:

    step             seconds (x read)      seconds (x read)
    read                0.12   (1.0)          0.12   (1.0)
    before e64da65      0.67   (5.7)          0.51   (4.3)   issue 14 measured 6.4x: images verify()-ed only
    build 1 thread      7.53  (64.6)          6.80  (58.1)   every image fully decoded, one thread
    build               7.46  (64.0)          7.42  (63.5)   a decoding thread per core (2 here, both busy)

Run it on a machine with idle cores to see the decoding spread: Pillow releases the GIL while decoding
(``_decode`` in Pillow's ``src/decode.c`` wraps the decoder call in ``ImagingSectionEnter``/``Leave``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from diffbench.data.synth import vismin

# Peak RSS is VmHWM (ru_maxrss would carry the parent's peak across fork + exec). It counts the pages of memory-mapped source files that were touched; the sampled
# peak of RssAnon (heap and Arrow buffers, not file pages) is what streaming keeps flat.
SAMPLER = """
import threading
def _status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0
def _anon_mb():
    return _status_mb("RssAnon")
peak_anon = [0.0]
def _sample():
    while True:
        peak_anon[0] = max(peak_anon[0], _anon_mb())
        time.sleep(0.005)
threading.Thread(target=_sample, daemon=True).start()
"""

READ = """
import json, sys, time, resource
from pathlib import Path
import pyarrow as pa
start = time.perf_counter()
rows = nbytes = 0
for path in sorted(Path(sys.argv[1]).rglob("*.arrow")):
    with pa.memory_map(str(path)) as source:
        for batch in pa.ipc.open_stream(source):
            rows += batch.num_rows
            for name in ("image_0", "image_1"):
                data = batch.column(name).field("bytes")
                nbytes += sum(len(b) for b in data.to_pylist())  # every byte touched, as the build does
print(json.dumps({"rows": rows, "bytes": nbytes, "seconds": time.perf_counter() - start,
                  "rss_mb": _status_mb("VmHWM"), "anon_mb": peak_anon[0]}))
"""

BUILD = """
import json, os, sys, time, resource
import datasets  # imported before the clock starts, as pyarrow is for the read step
from diffbench.data import building, image_checks
if sys.argv[2] == "1":  # every image check on one decoding thread
    image_checks.decode_threads = lambda configured=None: 1
start = time.perf_counter()
summary = building.build("vismin", "bench", source=sys.argv[1], overwrite=True)
print(json.dumps({"rows": summary.rows["test"], "seconds": time.perf_counter() - start,
                  "rss_mb": _status_mb("VmHWM"), "anon_mb": peak_anon[0]}))
"""

# The builder of an earlier commit, run directly (building.py of today adds provenance and the swap).
BEFORE = """
import importlib.util, json, sys, time, tempfile
import datasets
spec = importlib.util.spec_from_file_location("vismin_before", sys.argv[2])
module = importlib.util.module_from_spec(spec)
sys.modules["vismin_before"] = module  # dataclasses look their module up
spec.loader.exec_module(module)
# the builder class found by what it is: its name differs between commits (VisMin, Vismin)
builder_class = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, datasets.DatasetBuilder)
                     and v.__module__ == module.__name__)
start = time.perf_counter()
with tempfile.TemporaryDirectory() as scratch:
    builder = builder_class(config_name="bench", dataset_name="vismin", hash="before", cache_dir=scratch + "/cache",
                            source=sys.argv[1])
    builder.download_and_prepare(output_dir=scratch + "/out", download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD)
    rows = builder.info.splits["test"].num_examples
    seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds, "rss_mb": _status_mb("VmHWM"), "anon_mb": peak_anon[0]}))
"""


def run_step(code: str, source: Path, hf_home: Path, *args: str) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    code = code.replace("start = time.perf_counter()", SAMPLER + "start = time.perf_counter()", 1)
    done = subprocess.run([sys.executable, "-c", code, str(source), *args], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def builder_at(commit: str, folder: Path) -> Path | None:
    """``datasets/vismin/vismin.py`` as it was at ``commit`` (``None`` outside a git checkout)."""
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:datasets/vismin/vismin.py"], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        print(f"  (no builder at {commit}: {done.stderr.strip()}; the 'before' step is skipped)", file=sys.stderr)
        return None
    path = folder / "vismin_before.py"
    path.write_text(done.stdout)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2084)
    parser.add_argument("--image-size", default="640x480")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--jpeg", action="store_true", help="re-encode the synthetic images as JPEG (quality 90)")
    parser.add_argument("--before", default="e64da65", help="git commit of the 'before' builder")
    args = parser.parse_args()
    width, height = (int(v) for v in args.image_size.split("x"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; {os.getloadavg()[0]:.1f} load average at start")
    print(f"{'N':>8} {'step':<15} {'seconds':>8} {'x read':>7} {'rows/s':>8} {'MB/s':>7} {'RSS MB':>7} {'anon MB':>8}")
    for scale in args.scales:
        n = args.n * scale
        with tempfile.TemporaryDirectory(prefix="bench-vismin-") as scratch:
            scratch = Path(scratch)
            started = time.perf_counter()
            rows = vismin.generate_bench(n, 0, (width, height))
            if args.jpeg:
                rows = map(as_jpeg, rows)
            source = vismin.write_save_to_disk(rows, scratch / "source", "test", num_shards=max(1, n // 1000))
            print(f"  (wrote {n:,} synthetic samples in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
            before = builder_at(args.before, scratch) if args.before else None
            steps = [("read", READ, ())]
            if before is not None:
                steps.append((f"before {args.before}", BEFORE, (str(before),)))
            steps += [("build 1 thread", BUILD, ("1",)), ("build", BUILD, ("all",))]
            results = {}
            for label, code, extra in steps:
                results[label] = result = run_step(code, source, scratch / "hf", *extra)
                mb = results["read"]["bytes"] / 1e6
                assert result["rows"] == n, (label, result["rows"], n)
                print(f"{n:>8,} {label:<15} {result['seconds']:>8.2f} {result['seconds'] / results['read']['seconds']:>7.1f} "
                      f"{n / result['seconds']:>8,.0f} {mb / result['seconds']:>7.1f} {result['rss_mb']:>7.0f} "
                      f"{result['anon_mb']:>8.0f}", flush=True)


def as_jpeg(row: dict) -> dict:
    """The row with both images re-encoded as JPEG (the real release's COCO images are JPEGs)."""
    for name in ("image_0", "image_1"):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(row[name]["bytes"])).convert("RGB").save(buffer, format="JPEG", quality=90)
        row[name] = {"bytes": buffer.getvalue(), "path": None}
    return row


if __name__ == "__main__":
    main()
