#!/usr/bin/env python3
"""Regressions of the service found by an outside test (issue 18), over real
HTTP on a loopback port:

- API keys fail closed: an empty --api-key, EMBEDDING_API_KEY="," or an
  empty --api-key-file stops the start (exit 2, naming the source); a key
  file emptied and reloaded by SIGHUP keeps the keys, also after a reload
  that had keys;
- a request whose client closed its connection is cancelled: its queued
  sequences leave the queue and its reservation goes back, and small
  requests are not kept waiting behind it;
- the drain is bounded: SIGTERM with a request still running ends the
  process within EMBEDDING_DRAIN_TIMEOUT (plus a batch), the request
  answered 503;
- /embed_all validates "dimensions" and honours it; with several models,
  "dimensions" is checked against the model the request chose.

usage: serve_regress_test.py CEMBED MODEL_DIR TMPDIR
Prints one line per check and "N passed, N failed"."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

cembed, model, tmp = sys.argv[1:4]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


work = os.path.join(tmp, "serve-regress")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(args, env_extra, name):
    port = free_port()
    log = os.path.join(work, name + ".log")
    env = dict(os.environ, EMBEDDING_CACHE="off", EMBEDDING_LOG_LEVEL="info")
    for k in ("EMBEDDING_API_KEY", "EMBEDDING_API_KEY_FILE"):
        env.pop(k, None)
    env.update(env_extra)
    models = [] if "--model" in args else ["--model", model]
    p = subprocess.Popen([cembed, "serve", *models, "--port", str(port)] + args, env=env,
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return p, port, log


def call(port, method, path, body=None, key=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def wait_health(p, port, log):
    for _ in range(600):
        if p.poll() is not None:
            break
        try:
            if call(port, "GET", "/health", timeout=5)[0] == 200:
                return True
        except OSError:
            time.sleep(0.1)
    print(open(log).read()[-2000:])
    return False


def metric(port, name):
    st, data = call(port, "GET", "/metrics", timeout=30)
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


# ---- 1. keys fail closed ----
empty = os.path.join(work, "empty-keys.txt")
with open(empty, "w") as f:
    f.write("# no keys yet\n\n")
for label, args, env in (("--api-key ''", ["--api-key", ""], {}),
                         ("EMBEDDING_API_KEY=,", [], {"EMBEDDING_API_KEY": ","}),
                         ("an empty --api-key-file", ["--api-key-file", empty], {}),
                         ("an empty EMBEDDING_API_KEY_FILE", [], {"EMBEDDING_API_KEY_FILE": empty})):
    p, port, log = start(args, env, "keys")
    try:
        code = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        code = "still serving"
    text = open(log).read()
    named = {"--api-key ''": "--api-key", "EMBEDDING_API_KEY=,": "EMBEDDING_API_KEY"}.get(label, empty)
    check(f"{label} stops the start (exit 2, naming the source)", code == 2 and named in text and "no API key" in text,
          f"exit {code}: {text.strip()[-160:]}")

# a key file: key, SIGHUP with the file emptied twice keeps the key (no request without one passes)
keyfile = os.path.join(work, "keys.txt")
with open(keyfile, "w") as f:
    f.write("sk-one\n")
p, port, log = start(["--api-key-file", keyfile], {}, "hup")
ok = wait_health(p, port, log)
sts = []
for content in ("sk-two\n", "", "# none\n", ""):
    with open(keyfile, "w") as f:
        f.write(content)
    p.send_signal(signal.SIGHUP)
    time.sleep(0.7)
    sts.append(call(port, "POST", "/embed", {"chunks": ["x"]})[0])
st_key, _ = call(port, "POST", "/embed", {"chunks": ["x"]}, key="sk-two")
check("SIGHUP with an emptied key file keeps the keys (after a reload too): no request passes without one",
      ok and sts == [401, 401, 401, 401] and st_key == 200, f"without a key {sts}, with the kept key {st_key}")
p.send_signal(signal.SIGTERM)
p.wait(timeout=60)

# ---- a port in use: said at once, before the model loads, with how to choose another ----
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen()
t0 = time.time()
busy_port = busy.getsockname()[1]
pb = subprocess.run([cembed, "serve", "--model", model, "--port", str(busy_port)], capture_output=True,
                    text=True, timeout=120, env=dict(os.environ, EMBEDDING_LOG_LEVEL="info"))
took = time.time() - t0
busy.close()
mk = subprocess.run(["make", "-n", "run", "PORT=8123"], capture_output=True, text=True,
                    cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
check("a port in use stops serve before the model loads, naming the port and --port / EMBEDDING_PORT / make run PORT=",
      pb.returncode == 1 and "in use" in pb.stderr and str(busy_port) in pb.stderr
      and "EMBEDDING_PORT" in pb.stderr and "PORT=" in pb.stderr and "model loaded" not in pb.stderr
      and "--port 8123" in mk.stdout, f"exit {pb.returncode} in {took:.1f} s: {pb.stderr.strip()[-200:]}")

# ---- 2. abandoned requests are cancelled; the drain is bounded ----
N = int(os.environ.get("REGRESS_CHUNKS", "20000"))


def big_body(tag):
    chunks = [f"{tag} chunk number {i} with some words" for i in range(N)]
    return json.dumps({"chunks": chunks}).encode()


def raw_post(port, body):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    return s


p, port, log = start([], {"EMBEDDING_MAX_MEMORY_PERCENT": "90", "EMBEDDING_DRAIN_TIMEOUT": "3"}, "abandon")
ok = wait_health(p, port, log)
socks = [raw_post(port, big_body("a")), raw_post(port, big_body("b"))]
depth = 0
t0 = time.time()
while time.time() - t0 < 60 and depth < N:
    depth = metric(port, "cembed_queue_depth") or 0
    time.sleep(0.2)
time.sleep(1)
for s in socks:
    s.close()
t_closed = time.time()
depth_after = reserved = None
while time.time() - t_closed < 15:
    depth_after = metric(port, "cembed_queue_depth")
    reserved = metric(port, "cembed_memory_reserved_bytes")
    if depth_after == 0 and reserved is not None and reserved < 1e6:
        break
    time.sleep(0.5)
t_small = time.time()
st_small, _ = call(port, "POST", "/embed", {"chunks": ["small request after the abandoned ones"]})
small_s = time.time() - t_small
check("closed connections cancel their queued sequences and give their reservations back",
      ok and depth >= N and depth_after == 0 and reserved is not None and reserved < 1e6,
      f"queue {depth:.0f} -> {depth_after} in {time.time() - t_closed:.1f} s, reserved {reserved}")
check("a small request after them answers at once", st_small == 200 and small_s < 2.0, f"{st_small} in {small_s:.2f} s")
# the access line is written when libmicrohttpd ends the request, just after the answer went out: wait for it
access, t_wait = [], time.time()
while not access and time.time() - t_wait < 5:
    text = open(log).read()
    access = [l for l in text.splitlines() if "POST /embed 200: 1 chunks" in l and "client 127.0.0.1" in l]
    if not access:
        time.sleep(0.1)
grows = text.count("increased batch size")
check("one access line per request at info (route, status, chunks, tokens, ms, client); batch growth is no flood",
      access and " tokens, " in access[-1] and " ms, " in access[-1] and grows <= 3 and "MB slack" not in text,
      f"{access[-1][-90:] if access else text[-300:]}; {grows} growth lines")

# /metrics: every metric has # HELP; one batch size, the same as /info's
st, data = call(port, "GET", "/metrics")
lines = data.decode().splitlines()
names = {l.split()[2] for l in lines if l.startswith("# TYPE ")}
helped = {l.split()[2] for l in lines if l.startswith("# HELP ")}
vals = {l.split()[0]: float(l.split()[1]) for l in lines if l and not l.startswith("#") and "{" not in l}
st_i, info_data = call(port, "GET", "/info")
cur = json.loads(info_data).get("current_batch_size") if st_i == 200 else None
check("/metrics: every metric has # HELP; cembed_batch_size is the one batch size (= /info current_batch_size)",
      st == 200 and names and names <= helped and "cembed_current_batch_size" not in vals
      and vals.get("cembed_batch_size") == cur and "cembed_last_batch_sequences" in vals,
      f"without HELP: {sorted(names - helped)}; batch_size {vals.get('cembed_batch_size')} /info {cur}")

# the drain: a big request still connected; SIGTERM must end the process within the drain time plus a batch
sk = raw_post(port, big_body("c"))
depth = 0
t0 = time.time()
while time.time() - t0 < 60 and depth < N / 2:
    depth = metric(port, "cembed_queue_depth") or 0
    time.sleep(0.2)
t_term = time.time()
p.send_signal(signal.SIGTERM)
try:
    code = p.wait(timeout=40)
except subprocess.TimeoutExpired:
    p.kill()
    code = "still running"
took = time.time() - t_term
sk.settimeout(5)
answer = b""
try:
    while True:
        d = sk.recv(65536)
        if not d:
            break
        answer += d
except OSError:
    pass
sk.close()
check("SIGTERM ends the drain after EMBEDDING_DRAIN_TIMEOUT=3: the request left is answered 503, exit 0",
      code == 0 and took < 15 and answer.startswith(b"HTTP/1.1 503"), f"exit {code} after {took:.1f} s, "
      f"answer {answer[:40]!r}; log: {open(log).read().strip()[-200:]}")

# ---- 9. /embed_all "dimensions"; with several models, "dimensions" of the chosen model ----
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_model  # noqa: E402

tiny = os.path.join(work, "tiny32")
tiny_model.write(tiny, hidden=32)
# the tiny model (32 dimensions) first, the real one (384) second: "dimensions" 100 is the second's to allow
p, port, log = start(["--model", tiny, "--model", model], {}, "dims")
ok = wait_health(p, port, log)
base = os.path.basename(os.path.normpath(model))
st, data = call(port, "POST", "/embed", {"model": base, "chunks": ["hello world"], "dimensions": 100})
ans = json.loads(data) if st == 200 else {}
st_t, data_t = call(port, "POST", "/embed", {"model": "tiny32", "chunks": ["the cat"], "dimensions": 100})
check("several models: \"dimensions\" is checked against the model the request chose",
      ok and st == 200 and len(ans["embeddings"][0]["embedding"]) == 100 and st_t == 400 and b"32" in data_t,
      f"{st} {data[:150] if st != 200 else ''} / {st_t} {data_t[:150]}")
st, data = call(port, "POST", "/embed_all", {"model": base, "inputs": ["hello world"], "dimensions": 8})
st2, data2 = call(port, "POST", "/embed_all", {"model": base, "inputs": ["hello world"]})
check("/embed_all refuses \"dimensions\" (its token vectors are not cut) instead of ignoring it",
      st == 400 and b"dimensions" in data and st2 == 200, f"{st} {data[:160]} / {st2}")
p.send_signal(signal.SIGTERM)
p.wait(timeout=60)

shutil.rmtree(work, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
