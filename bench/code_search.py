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

usage: bench/code_search.py [--cembed build/cembed] [--model DIR] [--max-queries N] TREE...
   e.g. bench/code_search.py /usr/lib/python3/dist-packages/numpy /usr/lib/python3.11
Runs the model over the whole copied tree twice: on a laptop-class CPU the
numpy + stdlib trees take a long while; name sub-folders for a quicker run.
"""
import argparse, ast, json, os, random, shutil, subprocess, sys, tempfile, time
from operator import mul

ap = argparse.ArgumentParser()
ap.add_argument("trees", nargs="+")
ap.add_argument("--cembed", default="build/cembed")
ap.add_argument("--model", default="build/model")
ap.add_argument("--max-queries", type=int, default=0, help="a random sample of this many (0: all)")
ap.add_argument("--work", default="")
a = ap.parse_args()
work = a.work or tempfile.mkdtemp(prefix="cembed-code-search.")
tree = os.path.join(work, "tree")
shutil.rmtree(tree, ignore_errors=True)


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

random.Random(7).shuffle(queries)
if a.max_queries:
    queries = queries[:a.max_queries]
print(f"{len(queries)} queries (documented functions, docstrings removed) in {tree}", flush=True)


def embed(args, out):
    t = time.time()
    r = subprocess.run([a.cembed, "embed", "--model", a.model, "--no-cache", "-o", out] + args,
                       capture_output=True, text=True, env=dict(os.environ, CEMBED_NO_PROGRESS="1"))
    if r.returncode:
        sys.exit(r.stderr)
    return time.time() - t


qfile = os.path.join(work, "queries.jsonl")
with open(qfile, "w") as f:
    for i, q in enumerate(queries):
        f.write(json.dumps({"id": str(i), "text": q[0]}) + "\n")
embed([qfile], os.path.join(work, "queries.out.jsonl"))
qvec = [json.loads(l)["embedding"] for l in open(os.path.join(work, "queries.out.jsonl"))]

for chunker in ("syntax", "lines"):
    out = os.path.join(work, f"chunks-{chunker}.jsonl")
    dt = embed(["--chunker", chunker, tree], out)
    chunks = [json.loads(l) for l in open(out)]
    by_path = {}
    for i, c in enumerate(chunks):
        by_path.setdefault(c["path"], []).append(i)
    vecs = [c["embedding"] for c in chunks]
    mrr = r1 = r10 = 0
    for qi, (qt, path, f0, f1) in enumerate(queries):
        qv = qvec[qi]
        relevant = set()
        for i in by_path.get(path, []):
            c = chunks[i]
            ov = min(f1, c["end_line"]) - max(f0, c["start_line"]) + 1
            if ov > 0 and 2 * ov >= min(f1 - f0 + 1, c["end_line"] - c["start_line"] + 1):
                relevant.add(i)
        scores = sorted(((sum(map(mul, qv, v)), i) for i, v in enumerate(vecs)), reverse=True)[:10]
        for rank, (_, i) in enumerate(scores, 1):
            if i in relevant:
                mrr += 1 / rank
                r10 += 1
                r1 += rank == 1
                break
    n = len(queries)
    toks = sum(c["tokens"] for c in chunks)
    print(f"{chunker:6s}: {len(chunks)} chunks, {toks} tokens, embedded in {dt:.0f} s; "
          f"MRR@10 {mrr / n:.3f}, recall@10 {r10 / n:.3f}, recall@1 {r1 / n:.3f}", flush=True)
