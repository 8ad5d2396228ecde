#!/usr/bin/env python3
"""Cold start with and without the cache of prepared weights
(EMBEDDING_WEIGHT_CACHE): `cembed embed` of one short text, and `serve`
until GET /health answers 200, wall (from exec) and CPU (user + system of
the child), median and minimum over interleaved runs.

Modes: "none" (EMBEDDING_WEIGHT_CACHE=off), "warm" (the file written by an
earlier start, mapped), "cold" (an empty folder each run: prepare, write,
fsync, rename: what the first start pays).

usage: start_time.py CEMBED MODEL [--runs N] [--precisions int8,fp32]
                     [--modes none,warm,cold] [--serve-runs N] [--tmp DIR]
"""
import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def env_for(mode, wdir):
    e = dict(os.environ, EMBEDDING_LOG_LEVEL="error", EMBEDDING_CACHE="off")
    if mode == "none":
        e["EMBEDDING_WEIGHT_CACHE"] = "off"
    else:
        if mode == "cold":
            shutil.rmtree(wdir, ignore_errors=True)
        e["EMBEDDING_WEIGHT_CACHE"] = wdir
    return e


def embed_once(a, prec, mode, wdir, text):
    env = env_for(mode, wdir)
    c0, t0 = child_cpu(), time.perf_counter()
    subprocess.run([a.cembed, "embed", "--model", a.model, "--precision", prec, "--no-cache", text],
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0, child_cpu() - c0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def serve_once(a, prec, mode, wdir):
    env = env_for(mode, wdir)
    port = free_port()
    c0, t0 = child_cpu(), time.perf_counter()
    p = subprocess.Popen([a.cembed, "serve", "--model", a.model, "--precision", prec, "--port", str(port)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = None
    while time.perf_counter() - t0 < 30:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1) as r:
                if r.status == 200:
                    wall = time.perf_counter() - t0
                    break
        except Exception:
            time.sleep(0.001)
    p.terminate()
    p.wait()
    return wall, child_cpu() - c0   # CPU includes the shutdown


def report(label, xs):
    w = [x[0] * 1000 for x in xs if x[0] is not None]
    c = [x[1] * 1000 for x in xs]
    print("%-28s wall median %6.1f ms (min %6.1f)  CPU median %6.1f ms  n=%d" %
          (label, statistics.median(w), min(w), statistics.median(c), len(w)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cembed")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--serve-runs", type=int, default=7)
    ap.add_argument("--precisions", default="int8,fp32")
    ap.add_argument("--modes", default="none,warm,cold")
    ap.add_argument("--tmp", default="/tmp/cembed-start-time")
    a = ap.parse_args()
    os.makedirs(a.tmp, exist_ok=True)
    text = os.path.join(a.tmp, "one.jsonl")
    with open(text, "w") as f:
        f.write('"def f(): pass"\n')
    modes = a.modes.split(",")
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    for prec in a.precisions.split(","):
        wdir = os.path.join(a.tmp, "w-" + prec)
        embed_once(a, prec, "cold", wdir, text)   # warm's file, and the page cache
        res = {m: [] for m in modes}
        for _ in range(a.runs):
            for m in modes:
                res[m].append(embed_once(a, prec, m, wdir if m != "cold" else wdir + "-cold", text))
        for m in modes:
            report("embed %s %s" % (prec, m), res[m])
        res = {m: [] for m in modes}
        for _ in range(a.serve_runs):
            for m in modes:
                res[m].append(serve_once(a, prec, m, wdir if m != "cold" else wdir + "-cold"))
        for m in modes:
            report("serve /health %s %s" % (prec, m), res[m])
        for m in ("warm",):
            for f in os.listdir(wdir):
                print("  file %s: %.1f MiB" % (f, os.path.getsize(os.path.join(wdir, f)) / 2**20))
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
