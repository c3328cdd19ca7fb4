"""Load on the demo Space: concurrent gradio_client clients scoring full-size VisMin submissions, or
difference captions of Spot-the-Diff's test size.

    .venv/bin/python bench/bench_space_load.py                       # 20 clients x 5 submissions each
    .venv/bin/python bench/bench_space_load.py --clients 40 --rounds 3
    .venv/bin/python bench/bench_space_load.py --mode captions       # 30 concurrent caption scorings

**VisMin** (``--mode vismin``, the default):

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

**Captions** (``--mode captions``; issue 12: "30 concurrent caption scorings took p50 20 s"): the
Spot-the-Diff sample built with Spot-the-Diff's test size (n=6,350 pairs, 20 % of them, 1,270, in
the test split; 32x24 images: only ids and captions matter), the Space launched on it, and 32
predictions files of 1,270 captions (``{id: caption}``, ~90 KB: each the pair's first reference with
one random word replaced, as a system's output differs from the references). Timed after a warm-up
scoring: ``--clients`` (default 30) clients each send their own file (other captions, as 30 systems
would) to ``/score_captions`` at once; every answer must be a success on all 1,270 pairs. The Space
scores one caption file at a time, in its worker process (``diffbench.space.caption_worker``), so a
client's latency is its wait in the queue plus its own scoring. Then the worst cases the Space
accepts for that split: every caption at the 2,000-character cap (2.4 MB, under the file limit
``caption_upload_limit(1270)``, 5.2 MB, which only escaped text could reach, with fewer characters), scored
alone within the Space's time bound (``DIFFBENCH_SPACE_CAPTION_TIMEOUT``, 120 s), or stopped there:
random words, and 1,000 one-letter words a caption (the most tokens the caption cap allows).

Measured on the shared 2-core development machine (load average 5-9 from other work: noisy), two runs
each, back to back, the same bench against the Space before (scoring on a thread of the server,
commit 7b3f06c) and after (the stoppable worker process): 30/30 succeeded every time.

| | p50 | p95 | max | a scoring | worst case: words / letters |
|---|---:|---:|---:|---:|---:|
| before, run 1 (load 4.8 -> 9.5) | 19.9 s | 29.8 s | 30.8 s | 1.03 s | 6.1 s / 11.3 s |
| before, run 2 (load 7.2 -> 8.2) | 17.7 s | 26.9 s | 28.0 s | 0.93 s | 5.8 s / 10.4 s |
| after, run 1 (load 8.6 -> 9.5) | 25.7 s | 37.5 s | 38.8 s | 1.29 s | 10.1 s / 22.6 s |
| after, run 2 (load 5.9 -> 6.7) | 18.3 s | 27.0 s | 27.8 s | 0.93 s | 6.5 s / 13.5 s |

Again on the idle machine (load 1-4), back to back, the same bench before (5cd3fab: a METEOR JVM a
worker) and after (dc86794: one METEOR JVM scoring on both cores), 30/30 succeeded every time:

| | p50 | p95 | max | a scoring | worst case: words / letters |
|---|---:|---:|---:|---:|---:|
| before | 9.8 s | 15.3 s | 15.8 s | 0.53 s | 3.9 s / 7.1 s |
| after, run 1 | 8.4 s | 12.8 s | 13.2 s | 0.44 s | 3.6 s / 5.0 s |
| after, run 2 | 8.3 s | 12.8 s | 13.2 s | 0.44 s | 3.4 s / 5.1 s |

(The issue's "p50 20 s" was the loaded machine: the same code scores twice as fast idle.)

The worker process costs nothing measurable (the request's pickle is ~3 KB: the rows travel as a
reference to their Arrow files); the latency is the queue: one scoring at a time, ~0.9-1.3 s each,
so the 15th of 30 waits ~14 of them. The worst input the Space accepts for a split of this size
scores in 6-23 s here, far inside the 120 s bound; a larger split (train: 8,566 pairs) allows a
proportionally larger file, and there the bound stops the worker and its JVMs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
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

import numpy as np
import pandas as pd

from diffbench.data import building
from diffbench.space.backend import caption_upload_limit
from diffbench.vismin import scoring
from diffbench.vismin import submission as vismin_submission

# gradio_client is imported by the functions that call the Space, after main() has pointed HF_HOME and
# the offline switches at the bench's private home: it imports huggingface_hub, which reads them once,
# when imported. The diffbench modules above import neither it nor datasets (main() checks).
HF_LIBRARIES = ("datasets", "huggingface_hub")

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
    building.build_configs("vismin", ["bench"], "sample", n=FULL_SIZE, seed=0, image_size=(32, 24))
    bench = building.load_built("vismin", "bench", "test")
    keys = vismin_submission.dataset_keys(bench)
    assert len(keys) == FULL_SIZE, len(keys)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": keys["id"], **{c: rng.random(len(keys)).round(6) for c in vismin_submission.SCORE_COLUMNS}})
    path = workdir / "vismin_submission.csv"
    frame.to_csv(path, index=False)
    expected = scoring.score_submission(path, dataset=bench)["scores"]["group_score"]
    return path, expected


def run_together(count: int, work) -> float:
    """``work(k)`` for k in range(count), each on its own thread, all started at once; the seconds until
    the last one ends."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0


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


CAPTION_PAIRS = 6350  # the sample's size whose test split (20 %) has Spot-the-Diff's 1,270 test pairs


def prepare_captions(workdir: Path, systems: int, worst_chars: int = 2000) -> tuple[list[Path], list[Path], int]:
    """Build the Spot-the-Diff sample at test size; write ``systems`` realistic predictions files (each
    its own captions, as different systems' outputs) and the largest one the Space accepts for that
    split; return them and the split's size."""
    building.build_configs("spot_the_diff", [building.default_config("spot_the_diff")], "sample", n=CAPTION_PAIRS,
                  seed=0, image_size=(32, 24))
    test = building.load_built("spot_the_diff", None, "test").select_columns(["id", "captions"])
    rng = random.Random(0)
    vocabulary = sorted({w for row in test for c in row["captions"] for w in c.split()})
    realistic = []
    for system in range(systems):
        predictions = {}
        for row in test:
            words = (row["captions"][0] or "nothing changed").split()
            words[rng.randrange(len(words))] = rng.choice(vocabulary)  # a system's caption, not a reference
            predictions[row["id"]] = " ".join(words)
        realistic.append(workdir / f"spot_the_diff_test_predictions_{system}.json")
        realistic[-1].write_text(json.dumps(predictions))
    words = [w for w in vocabulary if w.isalpha()] + [f"w{k}" for k in range(2000)]  # unseen words too

    def long_caption() -> str:
        text = ""
        while len(text) < worst_chars:
            text += rng.choice(words) + " "
        return text[:worst_chars].strip()

    def short_tokens() -> str:  # the most tokens 2,000 characters hold: 1,000 one-letter words
        return " ".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(worst_chars // 2))

    limit = caption_upload_limit(len(test))
    worst_paths = []
    for label, make in (("words", long_caption), ("letters", short_tokens)):
        body = json.dumps({key: make() for key in predictions})
        assert len(body.encode()) <= limit, (len(body), limit)
        worst_paths.append(workdir / f"worst_case_{label}.json")
        worst_paths[-1].write_text(body)
    return realistic, worst_paths, len(test)


def run_captions(workdir: Path, args) -> int:
    t0 = time.perf_counter()
    realistic, worst, n = prepare_captions(workdir, systems=args.clients + 2)
    print(f"set-up: Spot-the-Diff sample, test split {n:,} pairs; {len(realistic)} predictions files of "
          f"{realistic[0].stat().st_size / 1024:.0f} KB, "
          f"worst cases {', '.join(f'{p.stat().st_size / 1024 / 1024:.1f}' for p in worst)} MB, "
          f"in {time.perf_counter() - t0:.1f} s")
    url, proc = start_space(workdir)  # after the build: the Space loads it, not its own small sample
    try:
        code = score_captions_load(url, proc, realistic, worst, n, args)
    finally:
        stop_space(proc)
    if code == 0:
        shutil.rmtree(workdir, ignore_errors=True)  # a failed run keeps its space.log
    else:
        print(f"the Space's log: {workdir / 'space.log'}")
    return code


def score_captions_load(url: str, proc: subprocess.Popen, realistic: list[Path], worst: list[Path], n: int, args) -> int:
    from gradio_client import Client, handle_file  # see HF_LIBRARIES

    def score(client, path):
        return client.predict(handle_file(str(path)), "spot_the_diff", "test", api_name="/score_captions")

    warm = Client(url, verbose=False)
    t0 = time.perf_counter()
    message = score(warm, realistic[-1])[0]
    assert message.startswith("✓"), message
    print(f"warm-up scoring (worker process and JVMs started): {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    message = score(warm, realistic[-2])[0]
    assert message.startswith("✓"), message
    print(f"one more file of new captions, alone, warm: {time.perf_counter() - t0:.2f} s")

    clients = [Client(url, verbose=False) for _ in range(args.clients)]
    latencies, failures, lock = [], [], threading.Lock()
    start = threading.Barrier(args.clients)

    def work(k: int) -> None:
        start.wait()
        t = time.perf_counter()
        try:
            got = score(clients[k], realistic[k])[0]  # its own captions: no tokenizer cache shared with another
            problem = None if got.startswith("✓") and f"{n:,} samples" in got else got
        except Exception as err:  # noqa: BLE001 -- counted, reported
            problem = f"{type(err).__name__}: {err}"
        with lock:
            (failures.append(f"client {k}: {problem}") if problem else latencies.append(time.perf_counter() - t))

    load0, cpu0 = os.getloadavg(), cpu_seconds(proc.pid)
    wall = run_together(args.clients, work)
    print(f"{args.clients} concurrent caption scorings of {n:,} pairs: {len(latencies)}/{args.clients} succeeded in "
          f"{wall:.1f} s ({wall / max(len(latencies), 1):.2f} s a scoring)")
    if latencies:
        print(f"latency: p50 {statistics.median(latencies):.1f} s, p95 {percentile(latencies, 0.95):.1f} s, "
              f"max {max(latencies):.1f} s, min {min(latencies):.1f} s")
    print(f"machine: {os.cpu_count()} cores; load average before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"(the clients, the server and its worker share them); server process CPU "
          f"{cpu_seconds(proc.pid) - cpu0:.1f} s (its worker and JVMs not counted)")

    for path, what in zip(worst, ("random words", "1,000 one-letter words")):
        t0 = time.perf_counter()
        message = score(warm, path)[0]
        elapsed = time.perf_counter() - t0
        outcome = "scored" if message.startswith("✓") else f"answered: {message[:160]}"
        print(f"worst case accepted ({n:,} captions of 2,000 characters, {what}, "
              f"{path.stat().st_size / 1024 / 1024:.1f} MB): {elapsed:.1f} s, {outcome}")
    if failures:
        print("failures:\n  " + "\n  ".join(failures[:10]))
        return 1
    return 0


def run_vismin(workdir: Path, args) -> int:
    t0 = time.perf_counter()
    submission, expected = prepare(workdir)
    print(f"set-up: VisMin sample at full size ({FULL_SIZE:,} samples) and a {submission.stat().st_size / 1024:.0f} KB "
          f"submission in {time.perf_counter() - t0:.1f} s")
    url, proc = start_space(workdir)
    try:
        code = score_vismin_load(url, proc, submission, expected, args)
    finally:
        stop_space(proc)
    if code == 0:
        shutil.rmtree(workdir, ignore_errors=True)  # a failed run keeps its space.log
    else:
        print(f"the Space's log: {workdir / 'space.log'}")
    return code


def score_vismin_load(url: str, proc: subprocess.Popen, submission: Path, expected: float, args) -> int:
    from gradio_client import Client, handle_file  # see HF_LIBRARIES

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
                message, table, *_, results_path, _ = client.predict(
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

    cpu0 = cpu_seconds(proc.pid)
    wall = run_together(args.clients, work)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("vismin", "captions"), default="vismin")
    parser.add_argument("--clients", type=int, default=None, help="default: 20 (vismin), 30 (captions)")
    parser.add_argument("--rounds", type=int, default=5, help="submissions each client scores, one after another")
    args = parser.parse_args()
    if args.clients is None:
        args.clients = 30 if args.mode == "captions" else 20

    early = [name for name in HF_LIBRARIES if name in sys.modules]
    if early:  # they would keep the user's HF_HOME: the bench would build into the user's own cache
        raise SystemExit(f"{', '.join(early)} imported before the bench set HF_HOME; import it in a function")
    workdir = Path(tempfile.mkdtemp(prefix="bench-space-load-"))
    os.environ.update(HF_HOME=str(workdir / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      HF_DATASETS_DISABLE_PROGRESS_BARS="1", GRADIO_ANALYTICS_ENABLED="False")
    return run_captions(workdir, args) if args.mode == "captions" else run_vismin(workdir, args)


def start_space(workdir: Path) -> tuple[str, subprocess.Popen]:
    """``diffbench space`` on loopback, offline, with a private leaderboard; its URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(workdir / "space.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "diffbench", "space", "--port", str(port)],
                                env={**os.environ, "GRADIO_TEMP_DIR": str(workdir / "gradio"),
                                     "DIFFBENCH_DATA_DIR": str(workdir / "data")},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.perf_counter()
    try:
        wait_for(url, proc)
    except BaseException:
        stop_space(proc)
        raise
    print(f"Space up in {time.perf_counter() - t0:.1f} s on {url}")
    return url, proc


def stop_space(proc: subprocess.Popen) -> None:
    """SIGTERM to the Space's process group (it stops its caption worker itself), SIGKILL if need be."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
