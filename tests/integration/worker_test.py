#!/usr/bin/env python3
"""`cembed worker` against a real redis-server on a loopback port.

usage: worker_test.py CEMBED MODEL CORPUS.jsonl TMPDIR [JOBS] [KILLS]

3 workers, JOBS (500) jobs, KILLS (50) SIGKILLs of random workers at random
moments (each restarted at once) and a Redis restart in the middle: every
batch_id gets exactly one result, equal (max abs diff <= 1e-6) to `cembed
embed` on the same chunks, ids and order kept; XPENDING is empty at the end;
the dead-letter stream holds only the poison job (a body that can never
succeed) and an entry with no body, moved there after max-deliveries with
their reasons, and no worker crashed on them; batch_ids with quotes,
backslashes, newlines, 300 bytes sharing a prefix, 42 and "42" each get
their own exact key; Redis refusing writes (maxmemory 1) mid-job is logged,
nothing is dead-lettered, and every job is stored once the limit is lifted;
`cembed enqueue` and `cembed result --wait`; SIGTERM lets a worker finish and
exit 0. Ends with "N passed, N failed"."""
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Redis  # noqa: E402

cembed, model, corpus_path, tmp = sys.argv[1:5]
n_jobs = int(sys.argv[5]) if len(sys.argv) > 5 else 500
n_kills = int(sys.argv[6]) if len(sys.argv) > 6 else 50
passed = failed = 0
rng = random.Random(3)
MAX_DELIVERIES = 5


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
rdir = os.path.join(tmp, f"redis-{port}")
os.makedirs(rdir, exist_ok=True)


def start_redis():
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", rdir, "--save", "",
                          "--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            Redis(port).cmd("PING")
            return p
        except (OSError, RuntimeError):   # not listening yet, or LOADING its append-only file
            time.sleep(0.05)
    sys.exit("redis-server did not start")


redis = start_redis()
url = f"redis://127.0.0.1:{port}"
env = dict(os.environ, EMBEDDING_CACHE=os.path.join(tmp, f"worker-cache-{port}.sqlite"), EMBEDDING_LOG_LEVEL="info",
           EMBEDDING_CLAIM_IDLE_MS="1500", EMBEDDING_MAX_DELIVERIES=str(MAX_DELIVERIES), EMBEDDING_BLOCK_MS="500",
           EMBEDDING_THREADS="1")
logs = open(os.path.join(tmp, f"workers-{port}.log"), "w")


started = 0


def start_worker():
    global started
    started += 1
    return subprocess.Popen([cembed, "worker", "--model", model, "--redis", url], env=env, stdout=logs, stderr=logs)


def wait_connected(n, timeout=120):
    """Until the workers' log shows n connections (a worker is killed once it runs, not while it loads)."""
    end = time.time() + timeout
    while time.time() < end and open(logs.name).read().count("connected to redis") < n:
        time.sleep(0.05)


# the chunks and their reference vectors
texts = [json.loads(l)["text"] for l in open(corpus_path, encoding="utf-8") if l.strip()]
pool = sorted(set(l.strip() for t in texts for l in t.splitlines() if 10 <= len(l.strip()) <= 120))
pool = rng.sample(pool, 300)
with open(os.path.join(tmp, "worker-pool.jsonl"), "w", encoding="utf-8") as f:
    for i, t in enumerate(pool):
        f.write(json.dumps({"id": i, "text": t}) + "\n")
ref = [json.loads(l)["embedding"] for l in subprocess.run(
    [cembed, "embed", "--model", model, os.path.join(tmp, "worker-pool.jsonl")], env=dict(env, EMBEDDING_CACHE="off"),
    check=True, capture_output=True, text=True).stdout.splitlines()]

jobs = {}
r = Redis(port)
for i in range(n_jobs):
    picks = [rng.randrange(len(pool)) for _ in range(rng.randint(1, 4))]
    jobs[f"job-{i}"] = picks
    body = {"batch_id": f"job-{i}", "chunks": [{"id": f"{i}-{k}", "text": pool[p]} for k, p in enumerate(picks)]}
    r.cmd("XADD", "cembed:jobs", "*", "body", json.dumps(body))
poison = r.cmd("XADD", "cembed:jobs", "*", "body", '{"batch_id": "poison", "chunks": [')
# an entry without a body (it crashed every worker on reclaim once): dead-lettered with the reason
no_body = r.cmd("XADD", "cembed:jobs", "*", "foo", "bar")
# batch_ids whose keys must be exact and distinct: escapes, long ids sharing a prefix, 42 and "42"
odd_ids = ['quote " back \\ slash', "line\nbreak", "x" * 299 + "A", "x" * 299 + "B", "42", 42, "\u00e9t\u00e9 \u2603"]
for k, b in enumerate(odd_ids):
    r.cmd("XADD", "cembed:jobs", "*", "body", json.dumps({"batch_id": b, "chunks": [pool[k]]}))


def result_key(b):
    """The key worker.h promises: a string as its bytes, an integer after 0xFF '#'."""
    return b"cembed:result:" + (b.encode() if isinstance(b, str) else b"\xff#" + str(b).encode())
# one more through the command-line client
with open(os.path.join(tmp, "worker-job.json"), "w") as f:
    json.dump({"batch_id": "cli-job", "chunks": [pool[0], pool[1]]}, f)
enq = subprocess.run([cembed, "enqueue", "--redis", url, os.path.join(tmp, "worker-job.json")], capture_output=True,
                     text=True)

workers = []
try:
    workers = [start_worker() for _ in range(3)]
    t0 = time.time()
    kills = 0
    restarted_redis = False
    connections = 3
    crashes = []
    while kills < n_kills:
        wait_connected(connections)
        time.sleep(rng.uniform(0.05, 1.0))
        k = rng.randrange(3)
        if workers[k].poll() is not None:
            crashes.append(workers[k].returncode)   # it ended on its own: a crash
        workers[k].kill()
        workers[k].wait()
        workers[k] = start_worker()
        connections += 1
        kills += 1
        if kills == n_kills // 2 and not restarted_redis:
            # Redis goes away mid-run and comes back with its data (append-only file)
            try:
                Redis(port).cmd("SHUTDOWN")
            except (RuntimeError, OSError):
                pass
            redis.wait(timeout=30)
            time.sleep(1.0)
            redis = start_redis()
            restarted_redis = True
            connections += 2   # the two others reconnect (the restarted one connects once, counted already)

    # wait for every result
    deadline = time.time() + 600
    r = Redis(port)
    missing = list(jobs) + ["cli-job"]
    while missing and time.time() < deadline:
        missing = [b for b in missing if r.cmd("EXISTS", f"cembed:result:{b}") == 0]
        if missing:
            time.sleep(0.5)
    elapsed = time.time() - t0
    # the poison job's and the body-less entry's deliveries need a few claim periods after that
    while time.time() < deadline and r.cmd("XLEN", "cembed:dead") < 2:
        time.sleep(0.5)
    time.sleep(2)
    crashes += [w.returncode for w in workers if w.poll() is not None]
    check("no worker crashed (the body-less entry among the jobs)", not crashes, f"exit codes {crashes}")

    worst, bad, wrong_ids = 0.0, [], 0
    for b, picks in jobs.items():
        v = r.cmd("GET", f"cembed:result:{b}")
        if v is None:
            bad.append(b)
            continue
        a = json.loads(v)
        embs = a["embeddings"]
        if a["batch_id"] != b or len(embs) != len(picks) or [e["id"] for e in embs] != [f"{b[4:]}-{k}" for k in range(len(picks))]:
            wrong_ids += 1
            continue
        for e, p in zip(embs, picks):
            worst = max(worst, max(abs(x - y) for x, y in zip(e["embedding"], ref[p])))
    check("every batch_id has one correct result", not bad and not wrong_ids and worst <= 1e-6,
          f"{n_jobs - len(bad)}/{n_jobs} results in {elapsed:.0f} s, {wrong_ids} with wrong ids, max abs diff {worst:.2g}; "
          f"{kills} SIGKILLs, Redis restarted: {restarted_redis}")
    announced = r.cmd("XLEN", "cembed:results")
    check("results announced on cembed:results (at least once each)", announced >= n_jobs + 1, f"{announced} entries")
    pending = r.cmd("XPENDING", "cembed:jobs", "cembed")
    check("XPENDING is empty at the end", pending[0] == 0, f"{pending[0]} pending")
    dead = r.cmd("XRANGE", "cembed:dead", "-", "+")
    by_job = {e[1][e[1].index(b"job") + 1]: dict(zip(e[1][::2], e[1][1::2])) for e in dead}
    fields, nob = by_job.get(poison, {}), by_job.get(no_body, {})
    check("the poison job and the body-less entry, and only they, are in cembed:dead after max-deliveries, with "
          "their reasons",
          len(dead) == 2 and int(fields.get(b"deliveries", 0)) == MAX_DELIVERIES + 1
          and b"malformed JSON" in fields.get(b"reason", b"") and b'no "body" field' in nob.get(b"reason", b""),
          f"{len(dead)} dead, deliveries {fields.get(b'deliveries')}, reasons {fields.get(b'reason', b'')[:40]!r} "
          f"{nob.get(b'reason', b'')[:40]!r}")
    odd_ok = []
    for k, b in enumerate(odd_ids):
        v = r.cmd("GET", result_key(b))
        a = json.loads(v) if v else {}
        odd_ok.append(a.get("batch_id") == b and max(abs(x - y) for x, y in zip(a["embeddings"][0]["embedding"],
                                                                                 ref[k])) <= 1e-6)
    by_cli = subprocess.run([cembed, "result", "--redis", url, odd_ids[0]], capture_output=True, text=True)
    by_int = subprocess.run([cembed, "result", "--redis", url, "--int", "42"], capture_output=True, text=True)
    check("batch_ids with quotes, backslashes, newlines, 300 bytes, 42 and \"42\": each its own exact key",
          all(odd_ok) and by_cli.returncode == 0 and json.loads(by_cli.stdout)["batch_id"] == odd_ids[0]
          and by_int.returncode == 0 and json.loads(by_int.stdout)["batch_id"] == 42,
          f"{sum(odd_ok)}/{len(odd_ids)} found and right; cembed result: {by_cli.returncode}, --int: {by_int.returncode}")

    # Redis refusing writes mid-job (maxmemory): the error is logged, nothing is dead-lettered, and once the
    # limit is lifted every job is stored
    oom_jobs = [f"oom-{i}" for i in range(4)]
    for i, b in enumerate(oom_jobs):
        r.cmd("XADD", "cembed:jobs", "*", "body", json.dumps({"batch_id": b, "chunks": [pool[(i * 37 + k) % len(pool)] for k in range(300)]}))
    r.cmd("CONFIG", "SET", "maxmemory", "1")
    time.sleep(4)
    stored_under_oom = sum(r.cmd("EXISTS", f"cembed:result:{b}") for b in oom_jobs)
    r.cmd("CONFIG", "SET", "maxmemory", "0")
    end = time.time() + 120
    while time.time() < end and not all(r.cmd("EXISTS", f"cembed:result:{b}") for b in oom_jobs):
        time.sleep(0.3)
    oom_log = open(logs.name).read()
    oom_ok = all(r.cmd("EXISTS", f"cembed:result:{b}") for b in oom_jobs)
    check("Redis refusing writes: logged, retried, stored once allowed, nothing dead-lettered",
          stored_under_oom == 0 and oom_ok and "did not store the answer" in oom_log and "OOM" in oom_log
          and r.cmd("XLEN", "cembed:dead") == 2 and r.cmd("XPENDING", "cembed:jobs", "cembed")[0] == 0,
          f"{stored_under_oom} stored under the limit, all stored after: {oom_ok}, dead {r.cmd('XLEN', 'cembed:dead')}")
    res = subprocess.run([cembed, "result", "--redis", url, "--wait", "--timeout", "30", "cli-job"], capture_output=True,
                         text=True)
    cli = json.loads(res.stdout) if res.returncode == 0 else {}
    none = subprocess.run([cembed, "result", "--redis", url, "no-such-batch"], capture_output=True, text=True)
    check("cembed enqueue / cembed result", enq.returncode == 0 and cli.get("batch_id") == "cli-job"
          and max(abs(x - y) for x, y in zip(cli["embeddings"][1]["embedding"], ref[1])) <= 1e-6
          and none.returncode == 3, f"entry {enq.stdout.strip()}")

    # SIGTERM: the worker finishes what it holds and exits 0
    for i in range(20):
        r.cmd("XADD", "cembed:jobs", "*", "body", json.dumps({"batch_id": f"late-{i}", "chunks": [pool[i]] * 40}))
    time.sleep(0.5)
    codes = []
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            codes.append(w.wait(timeout=60))
        except subprocess.TimeoutExpired:
            w.kill()
            codes.append("hung")
    late_pending = r.cmd("XPENDING", "cembed:jobs", "cembed")[0]
    check("SIGTERM: workers finish their job and exit 0", codes == [0, 0, 0] and late_pending == 0,
          f"exit codes {codes}, {late_pending} pending after")
    log_text = open(logs.name).read()
    check("workers reconnected after the Redis restart", "retrying in" in log_text or "reconnecting" in log_text,
          f"{log_text.count('connected to redis')} connections; {log_text.count('claimed job')} claims of idle jobs "
          f"({MAX_DELIVERIES} of them the poison job's)")
    try:
        Redis(port).cmd("SHUTDOWN", "NOSAVE")
    except (RuntimeError, OSError):
        pass
    redis.wait(timeout=30)
finally:
    for w in workers:
        if w.poll() is None:
            w.kill()
    if redis.poll() is None:
        redis.kill()
    redis.wait(timeout=30)
shutil.rmtree(rdir, ignore_errors=True)   # Redis's append-only file: make test leaves no large files behind
for f in glob.glob(os.path.join(tmp, f"worker-cache-{port}.sqlite*")):
    os.remove(f)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
