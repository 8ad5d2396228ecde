#!/usr/bin/env python3
"""`cembed embed PATH...` on real source trees in temporary folders.

usage: embed_tree_test.py CEMBED MODEL TMPDIR [FILES]

Checks: the walker's file list equals git's own (`git ls-files --others
--exclude-standard`) on a tree of tricky .gitignore files; the chunks of a
tree of real Python and C sources (from this machine) fit the model, cover
every line, and their vectors equal `cembed embed` of the same texts as JSON
lines; skipped files are counted; a second run is all cache hits with
byte-identical output; after editing one file only chunks of that file are
recomputed; --format npy; a corrupt cache row is recomputed; Ctrl-C keeps
what was computed (exit 130); SIGKILL at random moments, many times over,
then a run that finishes: the cache passes PRAGMA integrity_check and every
vector equals a fresh computation; the progress bar on a terminal and log
lines off it; `cembed cache stats|prune|clear`; the size cap. FILES (default
8) is how many source files the tree gets. Ends with "N passed, N failed"."""
import glob
import json
import os
import pty
import random
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time

cembed, model, tmp = sys.argv[1:4]
n_files = int(sys.argv[4]) if len(sys.argv) > 4 else 8
passed = failed = 0
rng = random.Random(7)


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


def embed(args, env=None, **kw):
    e = dict(os.environ, EMBEDDING_LOG_LEVEL="info", **(env or {}))
    return subprocess.run([cembed, "embed", "--model", model] + args, env=e, capture_output=True, text=True, **kw)


def rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]


def counts(stderr):
    """(cached, computed) from the summary line."""
    for l in stderr.splitlines():
        if "chunks:" in l and "cached" in l:
            part = l.split("chunks: ")[1]
            return int(part.split("(")[1].split(" cached")[0]), int(part.split("cached, ")[1].split(" computed")[0])
    return None, None


def maxdiff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


work = os.path.join(tmp, "tree-test")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

# ---- the walker against git ----
ig = os.path.join(work, "ignores")
files = ["a.py", "b.log", "keep.log", "build/out.c", "src/build", "src/main.c", "src/gen/x.c", "src/gen/keep.c",
         "docs/a.md", "docs/sub/b.md", "notes.tmp", "deep/a/b/c/target.o", "deep/a/b/c/ok.txt", "top.txt",
         "sub/top.txt", "sub/.gitignore", "sub/x.secret", "sub/y.txt", "sub/z/x.secret", "[brackets].txt",
         "space name.txt", "logs/2024/app.txt", "logs/readme.md", "vendor/lib.c", "vendor/ok/lib.c", "a/x/b/c.txt"]
for f in files:
    p = os.path.join(ig, f)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if not f.endswith(".gitignore"):
        open(p, "w").write(f"content of {f}\n")
open(os.path.join(ig, ".gitignore"), "w").write(
    "# comment\n*.log\n!keep.log\nbuild/\n/top.txt\ndocs/*.md\n*.tmp\n**/c/*.o\nsrc/gen/\n!src/gen/keep.c\n"
    "\\[brackets].txt\nlogs/**/*.txt\nvendor/*\n!vendor/ok/\na/**/c.txt\n")
open(os.path.join(ig, "sub/.gitignore"), "w").write("*.secret\n!/z/x.secret\n/y.txt\n")
env = dict(os.environ, HOME=work, GIT_CONFIG_NOSYSTEM="1", XDG_CONFIG_HOME=work)
subprocess.run(["git", "init", "-q", ig], check=True, env=env)
want = sorted(subprocess.run(["git", "-C", ig, "ls-files", "--others", "--exclude-standard"], check=True, env=env,
                             capture_output=True, text=True).stdout.splitlines())
r = embed(["--list-files", ig])
got = sorted(os.path.relpath(l, ig) for l in r.stdout.splitlines())
check("walker = git ls-files --others --exclude-standard", r.returncode == 0 and got == want,
      f"{len(got)} files" if got == want else f"only cembed: {sorted(set(got) - set(want))}, "
      f"only git: {sorted(set(want) - set(got))}")

# ---- a tree of real code ----
tree = os.path.join(work, "src")
sources = sorted(glob.glob("/usr/lib/python3*/json/*.py") + glob.glob("/usr/lib/python3*/email/*.py")
                 + glob.glob("/usr/include/stdio.h") + glob.glob("/usr/include/string.h")
                 + glob.glob("/usr/lib/python3*/collections/*.py"))
sources = [s for s in sources if 500 < os.path.getsize(s) < 60000][:n_files]
for i, s in enumerate(sources):
    d = os.path.join(tree, f"pkg{i % 3}")
    os.makedirs(d, exist_ok=True)
    shutil.copy(s, os.path.join(d, f"{i:02d}_{os.path.basename(s)}"))
os.makedirs(os.path.join(tree, ".git"))
open(os.path.join(tree, ".git", "HEAD"), "w").write("ref: refs/heads/main\n")
os.makedirs(os.path.join(tree, "node_modules/x"))
open(os.path.join(tree, "node_modules/x/index.js"), "w").write("module.exports = 1;\n")
open(os.path.join(tree, ".gitignore"), "w").write("node_modules/\n*.pyc\n")
open(os.path.join(tree, "cache.pyc"), "wb").write(b"\x00\x01compiled")
open(os.path.join(tree, "image.bin"), "wb").write(bytes(range(256)) * 20)
open(os.path.join(tree, "big.txt"), "w").write("x = 1\n" * 400000)   # 2.4 MB: over the limit
open(os.path.join(tree, "empty.py"), "w").close()
cache_db = os.path.join(work, "cache.sqlite")
cenv = {"EMBEDDING_CACHE": cache_db}

t0 = time.time()
r1 = embed([tree, "-o", f"{work}/run1.jsonl"], cenv)
t1 = time.time() - t0
out1 = rows(f"{work}/run1.jsonl") if r1.returncode == 0 else []
ok = r1.returncode == 0 and len(out1) > 50
lines_of = {}
for e in out1:
    lines_of.setdefault(e["path"], []).append((e["start_line"], e["end_line"]))
    ok &= e["id"] == f'{e["path"]}:{e["start_line"]}-{e["end_line"]}' and 2 < e["tokens"] <= 256
    ok &= len(e["embedding"]) == 384
# every non-blank line of every source file is in some chunk
for p, spans in lines_of.items():
    text = open(p, encoding="utf-8", errors="replace").read().split("\n")
    covered = set(l for a, b in spans for l in range(a, b + 1))
    missing = [i + 1 for i, l in enumerate(text) if l.strip() and i + 1 not in covered]
    ok &= not missing
check("run 1: chunks fit the model and cover every line", ok,
      f"{len(out1)} chunks of {len(lines_of)} files in {t1:.1f} s")
check("skipped files are counted", "1 binary" in r1.stderr and "1 over" in r1.stderr and "1 empty" in r1.stderr
      and "2 ignored" in r1.stderr and "1 VCS folders" in r1.stderr,
      [l.split("INFO cembed: ")[1] for l in r1.stderr.splitlines() if "files:" in l][:1])

# the same texts through the JSON lines path give the same vectors
with open(f"{work}/texts.jsonl", "w", encoding="utf-8") as f:
    for e in out1:
        src = open(e["path"], encoding="utf-8", errors="replace").read().split("\n")
        # a syntax chunk's text: its context lines (enclosing signatures), then its own lines
        ctx = "".join(l + "\n" for a, b in e.get("context", []) for l in src[a - 1:b])
        text = ctx + "\n".join(src[e["start_line"] - 1:e["end_line"]])
        f.write(json.dumps({"id": e["id"], "text": text}) + "\n")
rj = embed([f"{work}/texts.jsonl"])
ref = {json.loads(l)["id"]: json.loads(l)["embedding"] for l in rj.stdout.splitlines()}
worst = max(maxdiff(e["embedding"], ref[e["id"]]) for e in out1) if out1 and len(ref) == len(out1) else 1
check("vectors = cembed embed of the same texts (JSON lines)", worst <= 1e-6, f"max abs diff {worst:.2g}")

t0 = time.time()
r2 = embed([tree, "-o", f"{work}/run2.jsonl"], cenv)
t2 = time.time() - t0
c2 = counts(r2.stderr)
same = open(f"{work}/run1.jsonl", "rb").read() == open(f"{work}/run2.jsonl", "rb").read()
check("run 2: every chunk from the cache, identical output", r2.returncode == 0 and c2 == (len(out1), 0) and same,
      f"{c2[0]} cached, {c2[1]} computed; {t1:.1f} s -> {t2:.2f} s ({t1 / max(t2, 1e-3):.0f}x)")

# edit one file in its middle: only chunks of that file are recomputed
victim = sorted(lines_of)[len(lines_of) // 2]
text = open(victim, encoding="utf-8").read().split("\n")
text[len(text) // 2] += "  # edited"
open(victim, "w", encoding="utf-8").write("\n".join(text))
r3 = embed([tree, "-o", f"{work}/run3.jsonl"], cenv)
c3 = counts(r3.stderr)
out3 = rows(f"{work}/run3.jsonl") if r3.returncode == 0 else []
in_victim = sum(1 for e in out3 if e["path"] == victim)
check("after editing one file only its chunks are recomputed", r3.returncode == 0 and c3[1] is not None
      and 1 <= c3[1] <= in_victim and c3[0] + c3[1] == len(out3),
      f"{c3[1]} computed of the file's {in_victim} chunks, {c3[0]} cached")

# npy output: vectors.npy (float32, rows x 384) + metadata.jsonl
rn = embed([tree, "--format", "npy", "-o", f"{work}/npy"], cenv)
ok = rn.returncode == 0
if ok:
    data = open(f"{work}/npy/vectors.npy", "rb").read()
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    meta = rows(f"{work}/npy/metadata.jsonl")
    n = len(meta)
    ok = data[:6] == b"\x93NUMPY" and f"'shape': ({n}, 384)" in header and "'<f4'" in header \
        and (10 + hlen) % 64 == 0 and len(data) == 10 + hlen + n * 384 * 4 and n == len(out3)
    for k in range(0, n, max(1, n // 10)):
        vec = struct.unpack_from("<384f", data, 10 + hlen + k * 1536)
        as_f32 = struct.unpack("<384f", struct.pack("<384f", *out3[k]["embedding"]))   # JSON's 9 digits round-trip
        ok &= meta[k]["row"] == k and meta[k]["id"] == out3[k]["id"] and vec == as_f32
check("--format npy writes vectors.npy + metadata.jsonl", ok, rn.stderr.strip().splitlines()[-1][-60:] if rn.stderr else "")

# a corrupt row (a vector changed behind the cache's back) is recomputed
db = sqlite3.connect(cache_db)
key, vec = db.execute("SELECT key, vec FROM vectors LIMIT 1").fetchone()
db.execute("UPDATE vectors SET vec = ? WHERE key = ?", (bytes([vec[0] ^ 0x40]) + vec[1:], key))
db.commit()
db.close()
r4 = embed([tree, "-o", f"{work}/run4.jsonl"], cenv)
c4 = counts(r4.stderr)
out4 = rows(f"{work}/run4.jsonl") if r4.returncode == 0 else []
worst = max(maxdiff(a["embedding"], b["embedding"]) for a, b in zip(out3, out4)) if len(out4) == len(out3) else 1
check("a corrupt cache row is a miss, recomputed", r4.returncode == 0 and c4[1] == 1 and worst <= 1e-6,
      f"{c4[1]} computed, max abs diff {worst:.2g}")

# Ctrl-C: stops after the window in hand, keeps what was computed
cdb = os.path.join(work, "ctrlc.sqlite")
# small windows (--chunk-tokens 24) make many batches, so the signal lands mid-run
p = subprocess.Popen([cembed, "embed", "--model", model, tree, "--chunk-tokens", "24", "-o", f"{work}/ctrlc.jsonl"],
                     env=dict(os.environ, EMBEDDING_CACHE=cdb), stderr=subprocess.PIPE, text=True)
for _ in range(300):
    time.sleep(0.05)
    if os.path.exists(f"{work}/ctrlc.jsonl") and os.path.getsize(f"{work}/ctrlc.jsonl") > 0:
        break
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=120)
written = rows(f"{work}/ctrlc.jsonl")
stored = sqlite3.connect(cdb).execute("SELECT count(*) FROM vectors").fetchone()[0]
r5 = embed([tree, "--chunk-tokens", "24", "-o", f"{work}/ctrlc2.jsonl"], {"EMBEDDING_CACHE": cdb})
c5 = counts(r5.stderr)
total5 = len(rows(f"{work}/ctrlc2.jsonl")) if r5.returncode == 0 else 0
check("Ctrl-C stops cleanly, keeps what was computed, the rerun resumes", p.returncode == 130 and
      0 < len(written) < total5 and 0 < stored <= len(written) and "interrupted" in err and c5[0] >= stored
      and r5.returncode == 0, f"exit {p.returncode}, {len(written)} of {total5} written, {stored} cached, rerun {c5[0]} "
      f"cached")

# SIGKILL at random moments, many times over, then a run that finishes
kdb = os.path.join(work, "killed.sqlite")
def stored_rows(path):
    try:
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        n = c.execute("SELECT count(*) FROM vectors").fetchone()[0]
        c.close()
        return n
    except sqlite3.Error:
        return 0


kills = 0
for i in range(10):
    before = stored_rows(kdb)
    p = subprocess.Popen([cembed, "embed", "--model", model, tree, "-o", f"{work}/killed.jsonl"],
                         env=dict(os.environ, EMBEDDING_CACHE=kdb), stderr=subprocess.DEVNULL)
    if i % 2:   # at a random moment of the run
        time.sleep(rng.uniform(0.2, max(1.0, 0.35 * t1)))
    else:       # a random moment just after a commit, so that every other kill lands mid-write or soon after
        while p.poll() is None and stored_rows(kdb) == before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
    if p.poll() is None:
        p.kill()
        kills += 1
    p.wait()
r6 = embed([tree, "-o", f"{work}/killed.jsonl"], {"EMBEDDING_CACHE": kdb})
c6 = counts(r6.stderr)
db = sqlite3.connect(kdb)
integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
n_rows = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
db.close()
fresh = {e["id"]: e["embedding"] for e in rows(f"{work}/run3.jsonl")}
killed = rows(f"{work}/killed.jsonl") if r6.returncode == 0 else []
worst = max(maxdiff(e["embedding"], fresh[e["id"]]) for e in killed) if len(killed) == len(fresh) else 1
check("SIGKILL at random moments: resumes, integrity ok, every vector = a fresh computation",
      r6.returncode == 0 and integrity == "ok" and worst <= 1e-6 and c6[0] > 0,
      f"{kills} kills, then {c6[0]} cached + {c6[1]} computed; integrity {integrity}; {n_rows} rows; "
      f"max abs diff {worst:.2g}")

# progress: a live bar on a terminal, log lines elsewhere
pid, fd = pty.fork()
if pid == 0:
    os.execve(cembed, [cembed, "embed", "--model", model, tree, "-o", os.devnull],
              dict(os.environ, EMBEDDING_CACHE=kdb))
buf = b""
while True:
    try:
        r, _, _ = select.select([fd], [], [], 120)
        chunk = os.read(fd, 4096) if r else b""
    except OSError:
        chunk = b""
    if not chunk:
        break
    buf += chunk
os.waitpid(pid, 0)
bar = buf.decode(errors="replace")
check("progress bar on a terminal", "\r[" in bar and "files" in bar and "chunks/s" in bar and "ETA" in bar
      and "cache" in bar, repr(bar.strip().split("\r")[-1][:90]))
rp = embed([tree, "-o", os.devnull, "--no-cache"], {"EMBEDDING_PROGRESS_SECONDS": "0"})   # a line per window: the run may take under a second
check("progress log lines off a terminal", rp.returncode == 0 and "progress:" in rp.stderr and "ETA" in rp.stderr
      and "\r" not in rp.stderr, f"{rp.stderr.count('progress:')} lines")

# cache commands and the size cap
cmd = lambda *a: subprocess.run([cembed, "cache", *a, "--cache", cache_db], capture_output=True, text=True)
st = json.loads(cmd("stats").stdout)
pr = cmd("prune", "--max-mb", "0")
st2 = json.loads(cmd("stats").stdout)
cl = cmd("clear")
st3 = json.loads(cmd("stats").stdout)
check("cembed cache stats|prune|clear", st["vectors"] >= len(out3) and st["integrity"] == "ok" and pr.returncode == 0
      and st2["vectors"] == 0 and cl.returncode == 0 and st3["vectors"] == 0,
      f"{st['vectors']} vectors, {st['file_bytes']} bytes on disk")
# a corrupt cache file (cut short, or garbage) is set aside with a warning and a new one started; clear
# and prune always work
bad = []
for name, damage in (("cut", lambda b: b[: len(b) // 3]), ("garbage", lambda b: b"not a database " * 100)):
    db = os.path.join(work, f"corrupt-{name}.sqlite")
    embed([tree, "-o", os.devnull], {"EMBEDDING_CACHE": db})
    for ext in ("-wal", "-shm"):
        if os.path.exists(db + ext):
            os.remove(db + ext)
    data = open(db, "rb").read()
    for what in ("embed", "clear", "prune"):
        open(db, "wb").write(damage(data))
        if what == "embed":
            r = embed([tree, "-o", os.devnull], {"EMBEDDING_CACHE": db})
        else:
            r = subprocess.run([cembed, "cache", what, "--cache", db], capture_output=True, text=True)
        if r.returncode != 0 or "set aside" not in r.stderr:
            bad.append(f"{name}/{what}: exit {r.returncode} {r.stderr.strip()[-120:]!r}")
    sd = json.loads(subprocess.run([cembed, "cache", "stats", "--cache", db], capture_output=True, text=True).stdout)
    if sd["integrity"] != "ok":
        bad.append(f"{name}: integrity {sd['integrity']}")
check("a corrupt cache file is set aside and replaced; embed, clear and prune work", not bad, "; ".join(bad)[:300])

# a file name that is not UTF-8 still gives valid JSON lines (the byte becomes U+FFFD)
odd = os.path.join(work, "odd-names")
os.makedirs(odd, exist_ok=True)
with open(os.path.join(odd.encode(), b"bad\xffname.py"), "w") as f:
    f.write("def f():\n    return 1\n")
ro = embed([odd, "--no-cache"], {})
try:
    rows = [json.loads(l) for l in ro.stdout.splitlines()]
    odd_ok = ro.returncode == 0 and len(rows) == 1 and rows[0]["path"].endswith("bad\ufffdname.py")
except ValueError:
    odd_ok = False
check("a file name that is not UTF-8 gives valid JSON (U+FFFD in id and path)", odd_ok, ro.stdout[:120])
# --format npy with JSON lines input is refused instead of writing JSON lines into the folder's name
jl = os.path.join(work, "one.jsonl")
open(jl, "w").write('{"id": 1, "text": "x"}\n')
rn = embed(["--format", "npy", "-o", os.path.join(work, "npy-out"), jl, "--no-cache"], {})
check("--format npy with JSON lines input is refused", rn.returncode == 2 and "--format npy" in rn.stderr
      and not os.path.exists(os.path.join(work, "npy-out")), rn.stderr.strip()[:120])

capdb = os.path.join(work, "cap.sqlite")
rc = embed([tree, "-o", os.devnull], {"EMBEDDING_CACHE": capdb, "EMBEDDING_CACHE_MAX_MB": "1"})
db = sqlite3.connect(capdb)
vb = db.execute("SELECT sum(length(vec)) FROM vectors").fetchone()[0]
meta_bytes = db.execute("SELECT v FROM meta WHERE k = 'bytes'").fetchone()[0]
check("the size cap evicts least recently used vectors", rc.returncode == 0 and vb <= 1 << 20 and vb == meta_bytes,
      f"{vb} bytes of vectors kept under a 1 MiB cap")
bad = embed([tree, "--overlap", "80"])
bad2 = embed([tree, "--format", "npy"])
bad3 = embed([tree, "--cache", "/proc/nope/c.sqlite"])
check("bad flags are refused with a message", bad.returncode == 2 and "--overlap" in bad.stderr
      and bad2.returncode == 2 and "-o DIR" in bad2.stderr and bad3.returncode == 1 and "/proc/nope" in bad3.stderr, "")

shutil.rmtree(work, ignore_errors=True)   # make test leaves no large files behind
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
