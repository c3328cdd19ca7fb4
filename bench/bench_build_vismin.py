"""Build throughput and peak memory of the VisMin bench config, against merely reading the source.

    .venv/bin/python bench/bench_build_vismin.py                 # N = 2,084 at 640x480, and 10 x N
    .venv/bin/python bench/bench_build_vismin.py --scales 1      # N only

For each N it writes a synthetic ``mair-lab/vismin-bench`` release (``save_to_disk`` layout), then, each
in a fresh process so that peak RSS is the step's own:

- ``read``: read every source Arrow file and touch every image's bytes (the floor: no build can be
  faster than reading its input once);
- ``build``: ``diffbench.building.build("vismin", "bench", source=...)`` into a scratch cache.

It prints rows/s, MB/s (of image bytes), peak RSS and peak anonymous RSS for both, and the
build/read time ratio.

Figures: see the closing note of issue 2 and README's Benchmarks section.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
import json, sys, time, resource
import datasets  # imported before the clock starts, as pyarrow is for the read step
from diffbench import building
start = time.perf_counter()
summary = building.build("vismin", "bench", source=sys.argv[1])
print(json.dumps({"rows": summary.rows["test"], "seconds": time.perf_counter() - start,
                  "rss_mb": _status_mb("VmHWM"), "anon_mb": peak_anon[0]}))
"""


def run_step(code: str, source: Path, hf_home: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    code = code.replace("start = time.perf_counter()", SAMPLER + "start = time.perf_counter()", 1)
    done = subprocess.run([sys.executable, "-c", code, str(source)], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2084)
    parser.add_argument("--image-size", default="640x480")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    width, height = (int(v) for v in args.image_size.split("x"))

    from diffbench.synth import vismin

    print(f"{'N':>8} {'source MB':>10} {'read s':>7} {'build s':>8} {'ratio':>6} {'build rows/s':>13} "
          f"{'build MB/s':>11} {'read RSS MB':>12} {'build RSS MB':>13} {'read anon MB':>13} {'build anon MB':>14}")
    for scale in args.scales:
        n = args.n * scale
        with tempfile.TemporaryDirectory(prefix="bench-vismin-") as scratch:
            scratch = Path(scratch)
            started = time.perf_counter()
            source = vismin.write_bench(scratch / "source", n=n, seed=0, image_size=(width, height),
                                        num_shards=max(1, n // 1000))
            print(f"  (wrote {n:,} synthetic samples in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
            read = run_step(READ, source, scratch / "hf")
            build = run_step(BUILD, source, scratch / "hf")
            assert build["rows"] == read["rows"] == n
            mb = read["bytes"] / 1e6
            print(f"{n:>8,} {mb:>10.1f} {read['seconds']:>7.2f} {build['seconds']:>8.2f} "
                  f"{build['seconds'] / read['seconds']:>6.1f} {n / build['seconds']:>13,.0f} {mb / build['seconds']:>11.1f} "
                  f"{read['rss_mb']:>12.0f} {build['rss_mb']:>13.0f} {read['anon_mb']:>13.0f} {build['anon_mb']:>14.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
