#!/usr/bin/env python3
"""Code search: syntax chunks against line windows, same model.

For each documented function (or method) of a Python tree, the first line of
its docstring is the query and the function, with its docstring removed, the
target. The tree is copied with the docstrings of those functions removed,
embedded with `cembed embed --chunker syntax` and again with `--chunker
lines`; the queries are embedded as JSON lines. A chunk answers a query when
it overlaps the target function by at least half of the smaller of the two
(half the chunk is the function, or half the function is in the chunk).
Reports MRR@10 and recall@10 (and @1) over all queries for each chunker.

usage: /usr/bin/python3 bench/code_search.py [--cembed build/cembed] [--model DIR]
           [--precision P] [--chunkers syntax,lines] [--work DIR] [--max-queries N] TREE...
   e.g. nice -n 10 /usr/bin/python3 bench/code_search.py --work /tmp/cs \
           /usr/lib/python3/dist-packages/numpy /usr/lib/python3.11
Needs numpy (Debian's python3-numpy: /usr/bin/python3) for the ranking.
Runs the model over the whole copied tree once per chunker: the numpy +
stdlib trees are about 8 M tokens each, tens of minutes on two cores. The
vectors go through a persistent cache (--cache, default WORK/cache.sqlite)
and the copied tree and the queries are kept in WORK, so that a run
interrupted (or one chunker at a time, --chunkers lines) resumes where it
stopped; each chunker's figures are also written to WORK/result-CHUNKER.json.
"""
import argparse, ast, json, os, random, shutil, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("trees", nargs="+")
ap.add_argument("--cembed", default="build/cembed")
ap.add_argument("--model", default="build/model")
ap.add_argument("--max-queries", type=int, default=0, help="a random sample of this many (0: all)")
ap.add_argument("--work", default="")
ap.add_argument("--cache", default="", help="the vector cache (default WORK/cache.sqlite)")
ap.add_argument("--precision", default="", help="fp32, bf16 or int8 (cembed's default: int8 with AVX2)")
ap.add_argument("--chunkers", default="syntax,lines")
a = ap.parse_args()
import numpy as np
work = a.work or tempfile.mkdtemp(prefix="cembed-code-search.")
tree = os.path.join(work, "tree")
os.makedirs(work, exist_ok=True)
qsaved = os.path.join(work, "queries.json")


def functions(src):
    """(node, qualname) of every function in a module, in a stable order."""
    out = []
    def visit(node, prefix):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = prefix + n.name
                if not isinstance(n, ast.ClassDef):
                    out.append((n, q))
                visit(n, q + ".")
            elif not isinstance(n, ast.Lambda):
                visit(n, prefix)
    visit(ast.parse(src), "")
    return out


if os.path.exists(qsaved) and os.path.isdir(tree):   # a run resumed: the same copy and queries
    queries = [tuple(q) for q in json.load(open(qsaved))]
else:
    shutil.rmtree(tree, ignore_errors=True)
    queries = []   # (query, path, first, last) of the function in the copied tree
    for root in a.trees:
        base = os.path.basename(root.rstrip("/"))
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                p = os.path.join(d, f)
                dst = os.path.join(tree, base, os.path.relpath(p, root))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    src = open(p, encoding="utf-8").read()
                    funcs = functions(src)
                except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError):
                    continue
                lines = src.split("\n")
                drop, picked = set(), []
                for n, q in funcs:
                    doc = ast.get_docstring(n)
                    b = n.body
                    if not doc or len(b) < 2 or b[0].end_lineno >= b[1].lineno:
                        continue
                    first = doc.strip().split("\n")[0].strip()
                    if len(first.split()) < 3 or b[-1].end_lineno - b[1].lineno < 2:
                        continue
                    drop.update(range(b[0].lineno, b[0].end_lineno + 1))
                    picked.append((n.lineno, n.end_lineno, first, q))
                kept = [l for i, l in enumerate(lines, 1) if i not in drop]
                open(dst, "w", encoding="utf-8").write("\n".join(kept))
                # the functions' lines in the copy: earlier dropped lines shift them up
                removed = sorted(drop)
                def shift(x):
                    import bisect
                    return x - bisect.bisect_left(removed, x)
                for first_line, last_line, qtext, q in picked:
                    queries.append((qtext, dst, shift(first_line), shift(last_line)))

    json.dump(queries, open(qsaved + ".tmp", "w"))
    os.replace(qsaved + ".tmp", qsaved)
random.Random(7).shuffle(queries)
if a.max_queries:
    queries = queries[:a.max_queries]
print(f"{len(queries)} queries (documented functions, docstrings removed) in {tree}", flush=True)


n_files = sum(len([f for f in fs if f.endswith(".py")]) for _, _, fs in os.walk(tree))
print(f"{n_files} files in the copy", flush=True)
cache = a.cache or os.path.join(work, "cache.sqlite")
prec = ["--precision", a.precision] if a.precision else []


def embed(args, out, log):
    """cembed embed ARGS -o OUT, stderr to LOG; (seconds, its closing 'chunks:' line)."""
    t = time.time()
    with open(log, "w") as lf:
        r = subprocess.run([a.cembed, "embed", "--model", a.model, "--cache", cache, "-o", out] + prec + args,
                           stderr=lf, env=dict(os.environ, CEMBED_NO_PROGRESS="1"))
    dt = time.time() - t
    if r.returncode:
        sys.exit(f"cembed failed ({r.returncode}): see {log}")
    summary = [l.strip() for l in open(log) if "chunks: " in l and "progress" not in l]
    return dt, summary[-1] if summary else ""


def unit(m):
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


qfile = os.path.join(work, "queries.jsonl")
with open(qfile, "w") as f:
    for i, q in enumerate(queries):
        f.write(json.dumps({"id": str(i), "text": q[0]}) + "\n")
embed([qfile], os.path.join(work, "queries.out.jsonl"), os.path.join(work, "log-queries"))
qvec = unit(np.array([json.loads(l)["embedding"] for l in open(os.path.join(work, "queries.out.jsonl"))], dtype=np.float32))

for chunker in a.chunkers.split(","):
    out = os.path.join(work, f"chunks-{chunker}")
    dt, summary = embed(["--chunker", chunker, "--format", "npy", tree], out, os.path.join(work, f"log-{chunker}"))
    chunks = [json.loads(l) for l in open(os.path.join(out, "metadata.jsonl"))]
    vecs = unit(np.load(os.path.join(out, "vectors.npy")).astype(np.float32))
    by_path = {}
    for i, c in enumerate(chunks):
        by_path.setdefault(c["path"], []).append(i)
    mrr = r1 = r10 = 0
    for q0 in range(0, len(queries), 256):   # the top 10 of a block of queries at a time
        sims = qvec[q0:q0 + 256] @ vecs.T
        top = np.argsort(-sims, axis=1)[:, :10]
        for qi in range(q0, min(q0 + 256, len(queries))):
            _, path, f0, f1 = queries[qi]
            relevant = set()
            for i in by_path.get(path, []):
                c = chunks[i]
                ov = min(f1, c["end_line"]) - max(f0, c["start_line"]) + 1
                if ov > 0 and 2 * ov >= min(f1 - f0 + 1, c["end_line"] - c["start_line"] + 1):
                    relevant.add(i)
            for rank, i in enumerate(top[qi - q0], 1):
                if int(i) in relevant:
                    mrr += 1 / rank
                    r10 += 1
                    r1 += rank == 1
                    break
    n = len(queries)
    toks = sum(c["tokens"] for c in chunks)
    res = {"chunker": chunker, "queries": n, "files": n_files, "chunks": len(chunks), "tokens": toks,
           "seconds": round(dt), "log": summary, "mrr10": mrr / n, "recall10": r10 / n, "recall1": r1 / n}
    json.dump(res, open(os.path.join(work, f"result-{chunker}.json"), "w"), indent=1)
    print(f"{chunker:6s}: {n} queries, {n_files} files, {len(chunks)} chunks, {toks} tokens, embedded in {dt:.0f} s "
          f"({summary}); MRR@10 {mrr / n:.3f}, recall@10 {r10 / n:.3f}, recall@1 {r1 / n:.3f}", flush=True)
