#!/usr/bin/python3
"""One model's table for bench/arch.sh, from its results folder R:
R/PEER.json (the peer's result line), R/PEER.time (/usr/bin/time -v),
R/PEER.f32 (its vectors), R/PEER.skip or R/PEER.nocos (why there is no row or
no cosine).

  table.py R TITLE DIMS
"""
import json
import os
import re
import sys

import numpy as np

PEERS = ["cembed-fp32", "cembed-bf16", "cembed-int8", "ort-fp32", "ort-int8", "llama-f32", "llama-q8_0"]
NAMES = {"ort-fp32": "ORT fp32", "ort-int8": "ORT int8 (dynamic)", "llama-f32": "llama.cpp F32",
         "llama-q8_0": "llama.cpp Q8_0"}


def result(r, peer):
    try:
        with open(os.path.join(r, peer + ".json")) as f:
            line = [x for x in f.read().splitlines() if x.startswith("{")][-1]
        return json.loads(line)
    except (OSError, IndexError, ValueError):
        return None


def rss_mib(r, peer):
    try:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(os.path.join(r, peer + ".time")).read())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def cosine(r, peer, dims):
    a_p, b_p = os.path.join(r, "cembed-fp32.f32"), os.path.join(r, peer + ".f32")
    if not (os.path.exists(a_p) and os.path.exists(b_p)):
        return None
    a = np.fromfile(a_p, dtype=np.float32).reshape(-1, dims).astype(np.float64)
    b = np.fromfile(b_p, dtype=np.float32).reshape(-1, dims).astype(np.float64)
    a = a[:len(b)]   # a peer checked on the first sequences only
    if a.shape != b.shape:
        return None
    if dims == 1:
        c = 1 - np.abs(a - b)[:, 0] / np.maximum(1, np.abs(a[:, 0]))
    else:
        c = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return c.min(), c.mean()


def note(r, peer, ext):
    p = os.path.join(r, peer + ext)
    return open(p).read().strip() if os.path.exists(p) else None


def main():
    r, title, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
    res = {p: result(r, p) for p in PEERS}
    tps = {p: (x or {}).get("tokens_per_s") for p, x in res.items()}
    ref = {k: tps.get(k) for k in ("ort-fp32", "llama-f32", "llama-q8_0")}
    tokens = next((x.get("tokens", x.get("real_tokens")) for x in res.values() if x), 0)
    print("\n### %s (%s tokens)\n" % (title, tokens))
    print("| peer | tokens/s | / ORT fp32 | / llama.cpp F32 | / llama.cpp Q8_0 | peak RSS MiB | min cos | mean cos | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for p in PEERS:
        skip = note(r, p, ".skip")
        if skip:
            notes.append("%s: %s" % (NAMES.get(p, p), skip))
            continue
        if res[p] is None:
            if os.path.exists(os.path.join(r, p + ".err")):
                err = [x for x in open(os.path.join(r, p + ".err")).read().splitlines() if x.strip()]
                notes.append("%s: failed: %s" % (NAMES.get(p, p), err[-1] if err else "?"))
            continue
        t = tps[p]
        ratios = ["%.2f" % (t / ref[k]) if ref[k] else "-" for k in ("ort-fp32", "llama-f32", "llama-q8_0")]
        rss = rss_mib(r, p)
        cos = cosine(r, p, dims)
        cs = ["%.6f" % cos[0], "%.6f" % cos[1]] if cos and p != "cembed-fp32" else ["ref" if p == "cembed-fp32" else "n/a"] * 2
        rs = "%.0f" % rss if rss else "-"
        load = note(r, p, ".load") or "-"
        print("| %s | %.0f | %s | %s | %s | %s | %s |" % (NAMES.get(p, p), t, " | ".join(ratios), rs, cs[0], cs[1], load))
        if p.startswith("cembed"):
            notes.append("%s: gemm %s, attention %s" % (p, res[p].get("gemm"), res[p].get("attention")))
        nc = note(r, p, ".nocos")
        if nc and not p.startswith("cembed"):
            notes.append("%s: %s" % (NAMES.get(p, p), nc))
    print()
    if dims == 1:
        notes.insert(0, "a reranker's one logit: the cos columns are 1 - |logit - cembed fp32's| / max(1, |cembed fp32's|)")
    notes.insert(0, "load: the 1-minute load average when the peer started (2 CPUs; other jobs share them)")
    for n in notes:
        print("- " + n)


if __name__ == "__main__":
    main()
