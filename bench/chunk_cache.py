#!/usr/bin/env python3
"""What an edit re-embeds: syntax chunks against line windows.

For N functions picked at random (seeded) from a Python tree (default:
numpy, tests excluded), inserts one comment line in the middle of the
function (--add K: K lines), chunks the file before and after with build/bench_chunk_speed
--texts (the text `cembed embed` embeds, context lines included, hashed: the
cache key's content), and counts the chunks of the edited file whose text is
new, i.e. what `cembed embed --cache` computes again. Prints the mean and
the distribution for each chunker, and the chunk counts of the whole file.

usage: bench/chunk_cache.py [--model DIR] [--n N] [--seed S] [TREE]
"""
import argparse, ast, os, random, shutil, statistics, subprocess, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("tree", nargs="?", default="/usr/lib/python3/dist-packages/numpy")
ap.add_argument("--model", default="build/model")
ap.add_argument("--bench", default="build/bench_chunk_speed")
ap.add_argument("--n", type=int, default=40)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--add", type=int, default=1, help="comment lines inserted")
a = ap.parse_args()

funcs = []
for d, dirs, files in os.walk(a.tree):
    dirs[:] = sorted(x for x in dirs if x not in ("tests", "__pycache__"))
    for f in sorted(files):
        if not f.endswith(".py"):
            continue
        p = os.path.join(d, f)
        try:
            tree = ast.parse(open(p, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno >= 4:
                funcs.append((p, n.lineno, n.end_lineno, n.col_offset, n.name))
random.Random(a.seed).shuffle(funcs)
picked, seen = [], set()
for f in funcs:
    if f[0] not in seen:
        picked.append(f)
        seen.add(f[0])
    if len(picked) == a.n:
        break


def texts(path, lines):
    cmd = [a.bench, "--texts", "--model", a.model] + (["--lines"] if lines else []) + [path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return [h for h in out[1::2]]


tmp = tempfile.mkdtemp()
res = {"syntax": [], "lines": []}
sizes = {"syntax": [], "lines": []}
for path, first, last, col, name in picked:
    work = os.path.join(tmp, os.path.basename(path))
    shutil.copy(path, work)
    src = open(work, encoding="utf-8").read().split("\n")
    before = {m: texts(work, m == "lines") for m in res}
    mid = (first + last) // 2   # 1-based line in the function's body
    for k in range(a.add):
        src.insert(mid, " " * (col + 4) + f"# edited: a comment line {k} of {a.add}")
    open(work, "w", encoding="utf-8").write("\n".join(src))
    for m in res:
        after = texts(work, m == "lines")
        res[m].append(len([h for h in after if h not in set(before[m])]))
        sizes[m].append(len(after))
    os.remove(work)
shutil.rmtree(tmp)
print(f"{len(picked)} edits ({a.add} comment lines in the middle of a function, one file each) in {a.tree}")
for m in res:
    r = res[m]
    print(f"{m:7s} re-embedded chunks per edit: mean {statistics.mean(r):.2f}, median {statistics.median(r)}, "
          f"max {max(r)}; the edited files have {statistics.mean(sizes[m]):.1f} chunks on average")
