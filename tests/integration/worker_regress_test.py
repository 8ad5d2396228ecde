#!/usr/bin/env python3
"""Regressions of `cembed worker` found by an outside test (issue 18), against
a real redis-server on a loopback port:

- a wrong password in the Redis URL is logged with Redis's answer
  (WRONGPASS), not retried in silence;
- when cembed:results is of the wrong type, the job's answer cannot be
  announced: the job is not acked (it stays pending, the log says why) and is
  stored once the key is fixed;
- when cembed:dead is of the wrong type, a job past max-deliveries cannot be
  dead-lettered: it is not acked and not lost (it stays pending), and is
  dead-lettered once the key is fixed.

usage: worker_regress_test.py CEMBED MODEL TMPDIR
Prints one line per check and "N passed, N failed"."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import Redis  # noqa: E402

cembed, model, tmp = sys.argv[1:4]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


work = os.path.join(tmp, "worker-regress")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
PASSWORD = "right-pass"
redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work, "--save", "",
                          "--appendonly", "no", "--requirepass", PASSWORD], stdout=subprocess.DEVNULL)
r = None
for _ in range(100):
    try:
        r = Redis(port)
        r.cmd("AUTH", PASSWORD)
        break
    except (OSError, RuntimeError):
        time.sleep(0.05)
env = dict(os.environ, EMBEDDING_CACHE="off", EMBEDDING_LOG_LEVEL="info", EMBEDDING_CLAIM_IDLE_MS="500",
           EMBEDDING_MAX_DELIVERIES="1", EMBEDDING_BLOCK_MS="200", EMBEDDING_THREADS="1")
workers = []


def start_worker(url, name):
    log = open(os.path.join(work, name + ".log"), "w")
    p = subprocess.Popen([cembed, "worker", "--model", model, "--redis", url], env=env, stdout=log, stderr=log)
    workers.append(p)
    return p, log.name


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def pending():
    return r.cmd("XPENDING", "cembed:jobs", "cembed")[0]


try:
    # a wrong password: the worker says so
    p, log = start_worker(f"redis://:wrong-pass@127.0.0.1:{port}", "wrongpass")
    said = wait_for(lambda: "WRONGPASS" in open(log).read(), 60)
    p.terminate()
    p.wait(timeout=30)
    check("a wrong Redis password is logged with Redis's answer (WRONGPASS)", said,
          open(log).read().strip()[-200:])

    url = f"redis://:{PASSWORD}@127.0.0.1:{port}"
    # cembed:results of the wrong type: nothing acked until the answer is announced
    r.cmd("SET", "cembed:results", "not a stream")
    r.cmd("XADD", "cembed:jobs", "*", "body", json.dumps({"batch_id": "wt-1", "chunks": ["def f(): pass"]}))
    p, log = start_worker(url, "wrongtype")
    said = wait_for(lambda: "WRONGTYPE" in open(log).read(), 120)
    time.sleep(1)
    still = pending()
    r.cmd("DEL", "cembed:results")
    stored = wait_for(lambda: pending() == 0 and r.cmd("XLEN", "cembed:results") == 1, 60)
    check("cembed:results of the wrong type: the job is not acked (pending, logged) and stored once fixed",
          said and still == 1 and stored and r.cmd("EXISTS", "cembed:result:wt-1") == 1,
          f"logged {said}, pending while broken {still}, stored after {stored}")

    # cembed:dead of the wrong type: a job past max-deliveries stays pending instead of being acked and lost
    r.cmd("SET", "cembed:dead", "not a stream")
    poison = r.cmd("XADD", "cembed:jobs", "*", "body", '{"batch_id": "poison", "chunks": [')
    said = wait_for(lambda: "could not move it to cembed:dead" in open(log).read(), 60)
    time.sleep(1.5)
    still = pending()
    r.cmd("DEL", "cembed:dead")
    moved = wait_for(lambda: r.cmd("XLEN", "cembed:dead") == 1 and pending() == 0, 60)
    dead = r.cmd("XRANGE", "cembed:dead", "-", "+")
    check("cembed:dead of the wrong type: the job is not acked (pending, logged) and dead-lettered once fixed",
          said and still == 1 and moved and dead and dead[0][1][1] == poison,
          f"logged {said}, pending while broken {still}, moved after {moved}")
finally:
    for w in workers:
        if w.poll() is None:
            w.kill()
            w.wait()
    redis.kill()
    redis.wait(timeout=30)
shutil.rmtree(work, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
