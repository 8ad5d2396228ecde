#!/usr/bin/env python3
"""HTTP + JSON overhead of `cembed serve` against `cembed embed` on the same
texts: one POST /embed of every chunk vs one CLI run over the JSONL file,
alternating, REPEAT times each; prints median wall times, tokens/s and the
overhead. Vectors are checked equal (max abs diff <= 1e-6).

usage: bench/http_overhead.py [--model DIR] [--texts F.jsonl] [--repeat N] [--threads N]"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "cembed/models/all-MiniLM-L6-v2"))
ap.add_argument("--texts", default="/tmp/bench-peers/texts.jsonl")
ap.add_argument("--repeat", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
cembed = os.path.join(root, "build/cembed")
recs = [json.loads(l) for l in open(a.texts, encoding="utf-8") if l.strip()]
body = json.dumps({"batch_id": "bench", "chunks": [{"id": r["id"], "text": r["text"]} for r in recs]})

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
# the cache off: both sides compute every chunk
env = dict(os.environ, EMBEDDING_THREADS=str(a.threads), EMBEDDING_LOG_LEVEL="warning", EMBEDDING_CACHE="off")
server = subprocess.Popen([cembed, "serve", "--model", a.model, "--port", str(port), "--batch-size", "32"], env=env)
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/health")
        if c.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.1)

http_times, cli_times, tokens = [], [], 0
try:
    for _ in range(a.repeat):
        t0 = time.time()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        c.request("POST", "/embed", body=body, headers={"Content-Type": "application/json"})
        r = json.loads(c.getresponse().read())
        http_times.append(time.time() - t0)
        tokens = r["usage"]["tokens"]
        t0 = time.time()
        out = subprocess.run([cembed, "embed", "--model", a.model, "--threads", str(a.threads), a.texts],
                             check=True, capture_output=True, text=True, env=env).stdout
        cli_times.append(time.time() - t0)
finally:
    server.terminate()
    server.wait()
cli = {d["id"]: d["embedding"] for d in map(json.loads, out.splitlines())}
worst = max(max(abs(x - y) for x, y in zip(e["embedding"], cli[e["id"]])) for e in r["embeddings"])
h, m = statistics.median(http_times), statistics.median(cli_times)
print(f"{len(recs)} chunks, {tokens} tokens, {a.threads} threads, median of {a.repeat}")
print(f"cembed embed (CLI, whole process): {m:7.2f} s  {tokens / m:7.0f} tokens/s")
print(f"POST /embed (one request):         {h:7.2f} s  {tokens / h:7.0f} tokens/s")
print(f"HTTP + JSON overhead: {100 * (h / m - 1):+.1f}%   max abs diff between the two: {worst:.2g}")
sys.exit(0 if worst <= 1e-6 else 1)
