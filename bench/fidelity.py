#!/usr/bin/env python3
"""How far cembed's bf16 and int8 vectors are from its fp32 ones, and whether
that changes what a search finds.

Three sets of texts, embedded by `cembed embed --precision P` for every P:
  oracle     the texts of the TF.js golden file (tests/golden, 200+): cosine
             to fp32, and to TF.js's own vectors for reference;
  chunks     source-code chunks: --texts FILE (the peer benchmark's 2,000
             chunks), else windows of the Python standard library and the C
             headers made here (make_corpus.py, fixed seed);
  retrieval  queries with one known answer, from real code: every function
             of the Python standard library (/usr/lib/python3*) with a
             docstring of 40+ characters and a body of 3+ lines, sampled with
             a fixed seed; the query is the docstring, the document the
             function's source without it. Each query ranks all documents by
             cosine; MRR = mean of 1 / rank of its own function.

Bars (--check exits 1 when one fails): bf16 mean cosine >= 0.9999; int8 mean
>= 0.995 and min >= 0.98 (on oracle and chunks); |MRR - MRR fp32| <= 1% of
MRR fp32 for every precision.

usage: fidelity.py CEMBED MODEL [--golden F] [--texts F] [--chunks N]
                   [--queries N] [--precisions fp32,bf16,int8] [--threads 2]
                   [--check] [--json OUT]
Pure Python (no numpy), so it runs wherever the tests run.
"""
import argparse
import ast
import glob
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BARS = {"bf16": (0.9999, None), "int8": (0.995, 0.98)}
MRR_TOLERANCE = 0.01


def function_pairs(n, seed):
    """(docstring, source without it) of n stdlib functions."""
    pairs = []
    for path in sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)):
        if "/site-packages/" in path or "/dist-packages/" in path or "/test" in path:
            continue
        try:
            src = open(path, encoding="utf-8").read()
            tree = ast.parse(src)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        lines = src.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc or len(doc) < 40 or not node.body or node.end_lineno is None:
                continue
            first = node.body[0]   # the docstring's expression
            body = node.body[1:]
            if not body:
                continue
            head = lines[node.lineno - 1:first.lineno - 1]
            rest = lines[first.end_lineno:node.end_lineno]
            if len([l for l in rest if l.strip()]) < 3:
                continue
            pairs.append((doc, "\n".join(head + rest)))
    rng = random.Random(seed)
    rng.shuffle(pairs)
    # one pair per distinct docstring: a repeated docstring has no single answer
    seen, out = set(), []
    for d, s in pairs:
        if d not in seen:
            seen.add(d)
            out.append((d, s))
        if len(out) == n:
            break
    return out


def chunk_texts(path, n):
    if path:
        with open(path, encoding="utf-8") as f:
            return [json.loads(l)["text"] for l in f][:n]
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as t:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/oracle/make_corpus.py"), "--n", str(n),
                        "--lines", "40", "--seed", "11", t.name], check=True)
        return [json.loads(l)["text"] for l in open(t.name, encoding="utf-8")]


def embed(cembed, model, precision, texts, threads):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w", encoding="utf-8") as f:
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": str(i), "text": t}) + "\n")
        t0 = time.time()
        out = subprocess.run([cembed, "embed", "--model", model, "--precision", precision, "--threads", str(threads),
                              "--no-cache", "--jsonl", src], check=True, capture_output=True, text=True).stdout
        dt = time.time() - t0
    vecs = [None] * len(texts)
    for line in out.splitlines():
        o = json.loads(line)
        vecs[int(o["id"])] = o["embedding"]
    if any(v is None for v in vecs):
        sys.exit(f"fidelity: {precision}: some texts have no vector")
    return vecs, dt


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


def stats(cs):
    s = sorted(cs)
    return {"n": len(s), "mean": sum(s) / len(s), "min": s[0], "p01": s[len(s) // 100]}


def mrr(q, d):
    """vectors are L2-normalized: cosine = dot"""
    total = 0.0
    for i, qv in enumerate(q):
        own = sum(x * y for x, y in zip(qv, d[i]))
        rank = 1 + sum(1 for j, dv in enumerate(d) if j != i and sum(x * y for x, y in zip(qv, dv)) > own)
        total += 1.0 / rank
    return total / len(q)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cembed")
    ap.add_argument("model")
    ap.add_argument("--golden", default=os.path.join(ROOT, "tests/golden/tfjs-minilm.json"))
    ap.add_argument("--texts")
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--precisions", default="fp32,bf16,int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    precs = a.precisions.split(",")
    if precs[0] != "fp32":
        precs.insert(0, "fp32")

    golden = json.load(open(a.golden, encoding="utf-8"))
    oracle = [g["text"] for g in golden]
    chunks = chunk_texts(a.texts, a.chunks) if a.chunks else []
    pairs = function_pairs(a.queries, 7) if a.queries else []
    sets = {"oracle": oracle, "chunks": chunks, "queries": [p[0] for p in pairs], "functions": [p[1] for p in pairs]}
    allt, where = [], {}
    for name, ts in sets.items():
        where[name] = (len(allt), len(allt) + len(ts))
        allt += ts
    print(f"{len(oracle)} oracle texts, {len(chunks)} code chunks, {len(pairs)} docstring -> function pairs",
          flush=True)

    vec, secs = {}, {}
    for p in precs:
        vec[p], secs[p] = embed(a.cembed, a.model, p, allt, a.threads)
        print(f"  {p}: {len(allt)} texts in {secs[p]:.1f} s", flush=True)

    def part(p, name):
        lo, hi = where[name]
        return vec[p][lo:hi]

    report, failures = {"precisions": {}}, []
    mrr32 = mrr(part("fp32", "queries"), part("fp32", "functions")) if pairs else None
    rows = []
    for p in precs:
        r = {"seconds": secs[p]}
        for name in ("oracle", "chunks"):
            if sets[name]:
                r[name] = stats([cos(x, y) for x, y in zip(part(p, name), part("fp32", name))])
        r["oracle_vs_tfjs"] = stats([cos(x, g["emb"]) for x, g in zip(part(p, "oracle"), golden)])
        if pairs:
            r["mrr"] = mrr32 if p == "fp32" else mrr(part(p, "queries"), part(p, "functions"))
            r["mrr_change"] = (r["mrr"] - mrr32) / mrr32
        report["precisions"][p] = r
        if p in BARS:
            mean_bar, min_bar = BARS[p]
            for name in ("oracle", "chunks"):
                if name not in r:
                    continue
                if r[name]["mean"] < mean_bar:
                    failures.append(f"{p} {name}: mean cosine {r[name]['mean']:.6f} < {mean_bar}")
                if min_bar is not None and r[name]["min"] < min_bar:
                    failures.append(f"{p} {name}: min cosine {r[name]['min']:.6f} < {min_bar}")
            if pairs and abs(r["mrr_change"]) > MRR_TOLERANCE:
                failures.append(f"{p}: MRR {r['mrr']:.4f} vs fp32 {mrr32:.4f} ({100 * r['mrr_change']:+.2f}%)")
        rows.append(p)

    print()
    print("| precision | oracle cos to fp32 mean / min | chunks cos to fp32 mean / min / p01 | oracle cos to TF.js min"
          " | MRR (change) | seconds |")
    print("|---|---|---|---|---|---|")
    for p in rows:
        r = report["precisions"][p]
        o = r.get("oracle", {})
        c = r.get("chunks")
        cs = f"{c['mean']:.6f} / {c['min']:.6f} / {c['p01']:.6f}" if c else "-"
        ms = f"{r['mrr']:.4f} ({100 * r['mrr_change']:+.2f}%)" if "mrr" in r else "-"
        print(f"| {p} | {o.get('mean', 1):.6f} / {o.get('min', 1):.6f} | {cs} | {r['oracle_vs_tfjs']['min']:.6f}"
              f" | {ms} | {r['seconds']:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    for m in failures:
        print("FAIL", m)
    if a.check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
