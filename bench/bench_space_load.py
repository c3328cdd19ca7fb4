"""Load on the demo Space: concurrent gradio_client clients scoring full-size VisMin submissions.

    .venv/bin/python bench/bench_space_load.py                       # 20 clients x 5 submissions each
    .venv/bin/python bench/bench_space_load.py --clients 40 --rounds 3

Set-up (not timed): a private HF home; the VisMin sample built at the benchmark's full size (2,084
samples, upstream's per-category counts, 32x24 images: only ids and categories matter for scoring);
one official submission CSV (``id,T0_I0,T0_I1,T1_I0,T1_I1``, 2,084 rows, ~200 KB); the Space launched
with ``diffbench space`` on loopback, offline, and warmed with one scoring call.

Timed: every client (its own ``gradio_client.Client``, its own thread) uploads the CSV and calls
``/score_vismin`` ``--rounds`` times back to back, all clients starting together. Each latency is one
``predict`` (upload + queue + scoring + the table, chart and results.json coming back). Every answer
must be a success with the expected group score, or the benchmark fails. Prints p50 / p95 / max
latency and the throughput. The Space scores up to 4 submissions at once (``CONCURRENCY``); the rest
queue.

Measured on the 2-core development machine (the server and the 20 client threads share both cores),
20 clients x 5 rounds = 100 submissions of 2,084 rows, all succeeded, over three runs:
p50 2.97-3.30 s, p95 4.12-4.73 s, max 4.3-5.1 s, 5.8-6.4 submissions/s; the server spends 72-84 ms of
CPU a submission (scoring itself ~45 ms); the first scoring call after start-up 6.6-7.2 s (evaluate
and the metric imported). Before the charts moved from matplotlib to gr.BarPlot: p50 5.75 s, 3.3/s.
With the leaderboard in SQLite (a content hash a submission, the CSV read as a stream), one run on the
same loaded machine: 100/100, p50 3.14 s, p95 4.10 s, max 4.41 s, 6.2 submissions/s, 85 ms of server
CPU a submission: no slower.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

FULL_SIZE = 2084


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def prepare(workdir: Path) -> tuple[Path, float]:
    """Build the full-size sample into ``$HF_HOME``; write a submission; return it and its group score."""
    import numpy as np
    import pandas as pd

    from diffbench import building, vismin_submission
    from diffbench.commands.build import build_configs

    build_configs("vismin", ["bench"], "sample", n=FULL_SIZE, seed=0, image_size=(32, 24))
    bench = building.load_built("vismin", "bench", "test")
    keys = vismin_submission.dataset_keys(bench)
    assert len(keys) == FULL_SIZE, len(keys)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": keys["id"], **{c: rng.random(len(keys)).round(6) for c in vismin_submission.SCORE_COLUMNS}})
    path = workdir / "vismin_submission.csv"
    frame.to_csv(path, index=False)
    expected = vismin_submission.score_submission(path, dataset=bench)["scores"]["group_score"]
    return path, expected


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the Space exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the Space did not answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="submissions each client scores, one after another")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-space-load-"))
    os.environ.update(HF_HOME=str(workdir / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      HF_DATASETS_DISABLE_PROGRESS_BARS="1", GRADIO_ANALYTICS_ENABLED="False")
    t0 = time.perf_counter()
    submission, expected = prepare(workdir)
    print(f"set-up: VisMin sample at full size ({FULL_SIZE:,} samples) and a {submission.stat().st_size / 1024:.0f} KB "
          f"submission in {time.perf_counter() - t0:.1f} s")

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(workdir / "space.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "diffbench", "space", "--port", str(port)],
                            env={**os.environ, "GRADIO_TEMP_DIR": str(workdir / "gradio"),
                                 "DIFFBENCH_DATA_DIR": str(workdir / "data")},  # a private leaderboard
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from gradio_client import Client, handle_file

        t0 = time.perf_counter()
        wait_for(url, proc)
        print(f"Space up in {time.perf_counter() - t0:.1f} s on {url}")
        warm = Client(url, verbose=False)
        t0 = time.perf_counter()
        message = warm.predict(handle_file(str(submission)), False, "warm-up", api_name="/score_vismin")[0]
        assert message.startswith("✓"), message
        print(f"first scoring call (datasets loaded, metric imported): {time.perf_counter() - t0:.2f} s")

        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(args.clients)

        def work(n: int) -> None:
            client = clients[n]
            start.wait()
            for r in range(args.rounds):
                t = time.perf_counter()
                try:
                    message, table, _, results_path, _ = client.predict(
                        handle_file(str(submission)), False, f"client {n}", api_name="/score_vismin")
                    ok = message.startswith("✓") and f"{expected:.2f}" in table and Path(results_path).is_file()
                    problem = None if ok else message
                except Exception as err:  # noqa: BLE001 -- counted, reported
                    problem = f"{type(err).__name__}: {err}"
                elapsed = time.perf_counter() - t
                with lock:
                    if problem:
                        failures.append(f"client {n} round {r}: {problem}")
                    else:
                        latencies.append(elapsed)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(args.clients)]
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
        server_cpu = cpu_seconds(proc.pid) - cpu0
        total = args.clients * args.rounds
        print(f"{args.clients} concurrent clients x {args.rounds} submissions of {FULL_SIZE:,} rows: "
              f"{len(latencies)}/{total} succeeded in {wall:.1f} s ({len(latencies) / wall:.1f} submissions/s)")
        if latencies:
            print(f"latency per submission: p50 {statistics.median(latencies):.2f} s, "
                  f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s, min {min(latencies):.2f} s")
            print(f"server CPU: {server_cpu / total * 1000:.0f} ms a submission ({os.cpu_count()} cores, shared with "
                  f"the {args.clients} client threads)")
        if failures:
            print("failures:\n  " + "\n  ".join(failures[:10]))
            return 1
        return 0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()


if __name__ == "__main__":
    sys.exit(main())
