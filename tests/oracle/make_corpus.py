#!/usr/bin/env python3
"""Makes a corpus of real code chunks for the oracle tests.

Takes windows of lines from source files that every Debian machine with
python3 and libc6-dev has (the Python standard library and the C headers),
sorted by path and sampled with a fixed seed, and writes JSON lines
{"id": "path:start-end", "text": ...}. Files that are not UTF-8 and windows
with fewer than three non-blank lines are skipped. --edge FILE appends the
hand-made edge cases of that JSONL file.

usage: make_corpus.py --n 2000 [--lines 40] [--mix-lines] [--seed 0] [--edge F] OUT
"""
import argparse
import glob
import json
import random
import sys

ROOTS = [
    ("/usr/lib/python3*/**/*.py", 0.5),
    ("/usr/include/**/*.h", 0.5),
]


def files(pattern):
    out = []
    for p in sorted(glob.glob(pattern, recursive=True)):
        if "/site-packages/" in p or "/dist-packages/" in p:
            continue
        out.append(p)
    return out


def read_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        return data.decode("utf-8").splitlines(keepends=True)
    except (UnicodeDecodeError, OSError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--mix-lines", action="store_true",
                    help="window sizes drawn from 3..LINES instead of fixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--edge", help="JSONL of hand-made cases to append")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    chunks = []
    for pattern, share in ROOTS:
        pool = files(pattern)
        if not pool:
            sys.exit(f"make_corpus: no files match {pattern}")
        want = int(a.n * share)
        got = 0
        tries = 0
        while got < want and tries < want * 50:
            tries += 1
            path = rng.choice(pool)
            lines = read_lines(path)
            if not lines:
                continue
            size = rng.randint(3, a.lines) if a.mix_lines else a.lines
            start = rng.randrange(0, max(1, len(lines) - size + 1))
            window = lines[start:start + size]
            if sum(1 for l in window if l.strip()) < 3:
                continue
            chunks.append({"id": f"{path}:{start + 1}-{start + len(window)}",
                           "text": "".join(window)})
            got += 1
    while len(chunks) < a.n:  # odd n: top up from the first pool
        chunks.append(dict(chunks[len(chunks) % max(1, len(chunks))]))
        chunks[-1]["id"] += "#dup"

    with open(a.out, "w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
        if a.edge:
            with open(a.edge, encoding="utf-8") as e:
                for line in e:
                    if line.strip():
                        f.write(line if line.endswith("\n") else line + "\n")


if __name__ == "__main__":
    main()
