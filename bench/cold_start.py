#!/usr/bin/env python3
"""Cold start, as issue 21 item 4 measures it: `cembed embed` of one short
text (exec to exit) and `cembed serve` until GET /health answers 200 (exec
to the first 200), at each precision. Prints the median and minimum wall
time and the median CPU time (user + system of the child, from getrusage)
per case. Runs are interleaved (one of each case per round), so that a
change in the machine's load touches every case alike. Measures; asserts
nothing.

usage: bench/cold_start.py [--cembed build/cembed] [--model DIR] [--runs 21]
                           [--precisions int8,fp32] [--serve-runs 7] [--env K=V ...]

The vector cache is off for `embed` (--no-cache) and on for `serve` in a
scratch folder (its first start writes the model's fingerprint memo; the
runs after it read it back, as a restarted worker does). Other settings
(EMBEDDING_WEIGHT_CACHE, ...) come from the environment or --env.
"""
import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def cpu_now():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def child_cpu(before):
    return cpu_now() - before


def embed_once(cembed, model, prec, text_file, env):
    t0 = cpu_now()
    s = time.perf_counter()
    r = subprocess.run([cembed, "embed", "--model", model, "--precision", prec, "--no-cache", text_file],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - s
    if r.returncode != 0:
        sys.exit(f"embed failed: {r.stderr.decode()[-500:]}")
    return wall, child_cpu(t0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port):
    """True when GET /health answers 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def serve_once(cembed, model, prec, env):
    port = free_port()
    t0 = cpu_now()
    s = time.perf_counter()
    p = subprocess.Popen([cembed, "serve", "--model", model, "--precision", prec, "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while not health(port):
        if p.poll() is not None:
            sys.exit(f"serve exited with {p.returncode}")
        if time.perf_counter() - s > 30:
            p.kill()
            sys.exit("serve did not answer /health in 30 s")
        time.sleep(0.0005)
    wall = time.perf_counter() - s
    p.terminate()
    p.wait()
    return wall, child_cpu(t0)   # CPU: until exit (the shutdown is short)


def report(name, runs):
    walls = [w * 1000 for w, _ in runs]
    cpus = [c * 1000 for _, c in runs]
    print(f"{name:<22} wall median {statistics.median(walls):7.1f} ms  min {min(walls):7.1f} ms  "
          f"CPU median {statistics.median(cpus):7.1f} ms  ({len(runs)} runs)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cembed", default="build/cembed")
    ap.add_argument("--model", default=os.path.expanduser("~/.local/share/cembed/models/all-MiniLM-L6-v2"))
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--serve-runs", type=int, default=7)
    ap.add_argument("--precisions", default="int8,fp32")
    ap.add_argument("--env", action="append", default=[])
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cembed-cold-")
    env = dict(os.environ, CEMBED_NO_PROGRESS="1", EMBEDDING_CACHE=os.path.join(work, "cache.sqlite"))
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    text = os.path.join(work, "one.jsonl")
    with open(text, "w") as f:
        f.write('"def f(): pass"\n')
    precs = a.precisions.split(",")
    for p in precs:   # warm the page cache and write whatever first starts write
        embed_once(a.cembed, a.model, p, text, env)
        if a.serve_runs:
            serve_once(a.cembed, a.model, p, env)
    res = {}
    for i in range(max(a.runs, a.serve_runs)):
        for p in precs:
            if i < a.runs:
                res.setdefault(f"embed one text {p}", []).append(embed_once(a.cembed, a.model, p, text, env))
            if i < a.serve_runs:
                res.setdefault(f"serve to /health {p}", []).append(serve_once(a.cembed, a.model, p, env))
    print(f"cold start: {a.cembed}, {a.model}, load average {os.getloadavg()[0]:.2f}")
    for name, runs in res.items():
        report(name, runs)


if __name__ == "__main__":
    main()
