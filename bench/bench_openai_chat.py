"""Throughput of the OpenAI-compatible chat backend: requests in flight, and a rerun from the cache.

    .venv/bin/python bench/bench_openai_chat.py                       # 64 questions, 150 ms server latency
    .venv/bin/python bench/bench_openai_chat.py --requests 256 --latency 0.5

An API model's time is the server's latency, not our CPU: the figure that matters is how close N requests
in flight get to the ideal ``requests * latency / N``, and what a rerun costs once every answer is cached.
A loopback ``http.server`` (threaded, HTTP/1.1 with connections kept alive) stands in for the API: it
waits ``--latency`` seconds, then answers; every question carries one 320x240 image as a PNG data URI,
as a VisMin text question does. Printed per
concurrency: wall time, the ideal, their ratio, questions/s; then the cached rerun (no request sent). The
reference in the same run is the one-at-a-time loop (concurrency 1), as the official code asked its API.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from diffbench.backends.openai_chat import ChatRequest, OpenAIChatClient


def start_server(latency: float):
    counter = {"requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept alive, as API servers do
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                counter["requests"] += 1
            time.sleep(latency)
            data = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": "A"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    server, counter = start_server(args.latency)
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    image = Image.effect_noise((320, 240), 40).convert("RGB")
    print(f"{args.requests} questions, one 320x240 image each, server latency {args.latency * 1000:.0f} ms")
    print(f"{'concurrency':>11} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} {'q/s':>8}")
    reference = None
    try:
        for n in args.concurrency:
            requests = [ChatRequest(f"question {n}-{i}", (image,)) for i in range(args.requests)]
            with tempfile.TemporaryDirectory() as cache, OpenAIChatClient(base, "m", cache_dir=cache, concurrency=n,
                                                                          api_key_env="DIFFBENCH_BENCH_NO_KEY") as client:
                started = time.perf_counter()
                client.generate(requests)
                wall = time.perf_counter() - started
                ideal = args.requests * args.latency / n
                reference = reference or wall
                print(f"{n:>11} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>10.2f} {args.requests / wall:>8.1f}"
                      f"   ({reference / wall:.1f}x the one-at-a-time loop)")
                before = counter["requests"]
                started = time.perf_counter()
                client.generate(requests)
                rerun = time.perf_counter() - started
                assert counter["requests"] == before, "a cached rerun sent requests"
        print(f"cached rerun of {args.requests} questions: {rerun:.2f} s, 0 requests sent "
              f"({rerun / args.requests * 1000:.1f} ms a question: pixel hashing + cache reads)")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
