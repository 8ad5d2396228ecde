#!/usr/bin/env python3
"""Soak: `cembed serve` under mixed traffic for a while; RSS every minute.

usage: soak.py CEMBED MODEL [--minutes 30] [--warmup 5] [--clients 4] [--work DIR]

Traffic, all at once from --clients threads plus one for idle sockets:
/embed of 1 to 500 chunks (half of the texts seen before: cache hits, half
new), streamed /embed (some read to the end, some dropped after a few
lines), /v1/embeddings (floats, base64, dimensions), /tokenize, malformed and
oversized bodies, uploads cut off midway, and 50 idle connections that come
and go. RSS (VmRSS of the server) is sampled every 5 s; each minute prints
its maximum. After the warm-up, no minute's maximum may pass the warm-up's
last minute by more than 5%: exits 1 if one does (or if the server died or
answered a valid request with anything but 200/503/429)."""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("cembed")
ap.add_argument("model")
ap.add_argument("--minutes", type=float, default=30)
ap.add_argument("--warmup", type=float, default=5)
ap.add_argument("--clients", type=int, default=4)
ap.add_argument("--work", default=None)
a = ap.parse_args()
work = a.work or tempfile.mkdtemp(prefix="cembed-soak.")
os.makedirs(work, exist_ok=True)

# texts: lines of Python's standard library, in chunks of 3 to 40 lines
lines = []
for root, _, files in os.walk(os.path.dirname(os.__file__)):
    for f in files:
        if f.endswith(".py") and len(lines) < 200000:
            try:
                lines += open(os.path.join(root, f), encoding="utf-8").read().splitlines()
            except (OSError, UnicodeDecodeError):
                pass
rng = random.Random(7)
seen = [("\n".join(lines[i:i + rng.randint(3, 40)])) for i in rng.sample(range(len(lines) - 50), 3000)]


def text(r):
    if r.random() < 0.5:
        return r.choice(seen)   # a cache hit after its first time
    i = r.randrange(len(lines) - 50)
    return "\n".join(lines[i:i + r.randint(3, 40)]) + f"\n# {r.random()}"   # new


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
env = dict(os.environ, EMBEDDING_CACHE=f"{work}/soak-cache.sqlite", EMBEDDING_LOG_LEVEL="warn")
log = open(f"{work}/server.log", "w")
srv = subprocess.Popen([a.cembed, "serve", "--model", a.model, "--port", str(port)], env=env, stdout=log,
                       stderr=subprocess.STDOUT)
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/health")
        if c.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the server did not start: " + open(f"{work}/server.log").read()[-2000:])

stop = threading.Event()
counts = {"requests": 0, "bad": 0, "dropped": 0, "unexpected": 0}
lock = threading.Lock()


def note(key, n=1):
    with lock:
        counts[key] += n


def request(method, path, body, headers=None, want=(200, 503, 429)):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    note("requests")
    if r.status not in want:
        note("unexpected")
        print(f"unexpected {r.status} on {path}: {data[:200]!r}", flush=True)
    return r.status, data


def client(seed):
    r = random.Random(seed)
    while not stop.is_set():
        kind = r.random()
        try:
            if kind < 0.35:
                n = r.choice([1, 1, 4, 16, 64, 200, 500])
                request("POST", "/embed", json.dumps({"batch_id": f"b{r.random()}", "chunks": [
                    {"id": k, "text": text(r)} for k in range(n)]}))
            elif kind < 0.5:   # streamed; a third of them dropped after a few lines
                n = r.choice([20, 100, 300])
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                c.request("POST", "/embed", body=json.dumps({"stream": True, "chunks": [text(r) for _ in range(n)]}),
                          headers={"Content-Type": "application/json"})
                resp = c.getresponse()
                drop = r.random() < 0.33
                for i in range(n + 1):
                    if not resp.readline() or (drop and i == 5):
                        break
                c.close()
                note("dropped" if drop else "requests")
            elif kind < 0.65:
                body = {"input": [text(r) for _ in range(r.choice([1, 8, 32]))]}
                if r.random() < 0.5:
                    body["encoding_format"] = "base64"
                if r.random() < 0.3:
                    body["dimensions"] = 128
                request("POST", "/v1/embeddings", json.dumps(body))
            elif kind < 0.75:
                request("POST", "/tokenize", json.dumps({"inputs": [text(r) for _ in range(8)]}))
            elif kind < 0.85:   # bad bodies
                bad = r.choice(['{"chunks": [', '{"chunks": 5}', "[1,2", '{"chunks": []}',
                                '{"input": [[99999999]]}', "x" * 100000])
                request("POST", r.choice(["/embed", "/v1/embeddings"]), bad, want=(400, 413, 422))
                note("bad")
            elif kind < 0.95:   # an upload cut off midway
                sk = socket.create_connection(("127.0.0.1", port))
                body = json.dumps({"chunks": [text(r) for _ in range(50)]}).encode()
                sk.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
                sk.close()
                note("dropped")
            else:
                request("GET", r.choice(["/health", "/info", "/metrics"]), None, want=(200, 503))
        except OSError as e:
            note("unexpected")
            print(f"client error: {e}", flush=True)
            time.sleep(0.5)


def idler():
    socks = []
    r = random.Random(99)
    while not stop.is_set():
        while len(socks) < 50:
            try:
                socks.append(socket.create_connection(("127.0.0.1", port)))
            except OSError:
                break
        for _ in range(r.randint(1, 10)):
            socks.pop(r.randrange(len(socks))).close()
        time.sleep(1)
    for sk in socks:
        sk.close()


def rss_mib():
    with open(f"/proc/{srv.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(a.clients)]
threads.append(threading.Thread(target=idler, daemon=True))
for t in threads:
    t.start()
print(f"soak: {a.minutes:g} min, warm-up {a.warmup:g} min, {a.clients} clients + idle sockets, port {port}, "
      f"work {work}", flush=True)
t0 = time.time()
minute_max, cur, minute = [], 0.0, 1
while time.time() - t0 < a.minutes * 60 and srv.poll() is None:
    time.sleep(5)
    if srv.poll() is not None:
        break
    cur = max(cur, rss_mib())
    if time.time() - t0 >= minute * 60:
        minute_max.append(cur)
        with lock:
            c = dict(counts)
        print(f"minute {minute:3d}: RSS max {cur:7.1f} MiB   requests {c['requests']:6d}  bad {c['bad']:5d}  "
              f"dropped {c['dropped']:5d}  unexpected {c['unexpected']}", flush=True)
        cur, minute = 0.0, minute + 1
stop.set()
alive = srv.poll() is None
for t in threads:
    t.join(timeout=700)
srv.send_signal(signal.SIGTERM)
code = srv.wait(timeout=120)
warm = int(a.warmup)
if not alive or len(minute_max) <= warm:
    sys.exit(f"FAIL: the server {'died' if not alive else 'ran too briefly'} (exit {code}); see {work}/server.log")
base = minute_max[warm - 1]
worst = max(minute_max[warm:])
growth = (worst / base - 1) * 100
ok = growth <= 5 and counts["unexpected"] == 0 and code == 0
print(f"{'ok' if ok else 'FAIL'}: after the warm-up RSS {base:.1f} MiB (minute {warm}); highest later minute "
      f"{worst:.1f} MiB ({growth:+.1f}%, limit +5%); last minute {minute_max[-1]:.1f} MiB; {counts['requests']} "
      f"requests, {counts['unexpected']} unexpected answers; exit {code}")
sys.exit(0 if ok else 1)
