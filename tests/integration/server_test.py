#!/usr/bin/env python3
"""The HTTP service, tested over real HTTP on a loopback port.

usage: server_test.py CEMBED MODEL CORPUS.jsonl TMPDIR

Starts `cembed serve`, checks the seed's three cases (50, 1,000 and 5,000
chunks: every vector equal, max abs diff <= 1e-6, to embedding that chunk
alone with `cembed embed --batch-size 1`, ids and order kept), the OpenAI and
TEI forms, bad input of every kind (each gets its 4xx and the next normal
request is still answered correctly), health/info/metrics, and a SIGTERM that
drains an in-flight request and exits 0. Prints one line per check and ends
with "N passed, N failed"."""
import base64
import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

cembed, model, corpus_path, tmp = sys.argv[1:5]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name} {detail}")
    else:
        failed += 1
        print(f"FAIL  {name} {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env_extra=None):
    port = free_port()
    env = dict(os.environ, EMBEDDING_LOG_LEVEL="info", EMBEDDING_CACHE=f"{tmp}/server-cache-{port}.sqlite")
    env.update(env_extra or {})
    log = open(f"{tmp}/server-{port}.log", "w")
    p = subprocess.Popen([cembed, "serve", "--model", model, "--port", str(port)], env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            status, _, _ = call(port, "GET", "/health")
            if status == 200:
                return p, port
        except OSError:
            time.sleep(0.1)
    p.kill()
    sys.exit("server did not start: " + open(log.name).read()[-2000:])


def call(port, method, path, body=None, headers=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def maxdiff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


texts = [json.loads(l)["text"] for l in open(corpus_path, encoding="utf-8") if l.strip()]
rng = random.Random(5)
# 400 distinct chunks of mixed lengths, mostly short so that 6,050 of them
# stay quick on 2 cores (truncation of long ones is covered by the golden tests)
distinct = []
for t in rng.sample(texts, 400):
    lines = t.splitlines(keepends=True)
    distinct.append("".join(lines[: rng.choice([1, 1, 2, 2, 3, 4, 8])]) or "x")
with open(f"{tmp}/distinct.jsonl", "w", encoding="utf-8") as f:
    for i, t in enumerate(distinct):
        f.write(json.dumps({"id": i, "text": t}) + "\n")
alone_out = subprocess.run([cembed, "embed", "--model", model, "--batch-size", "1", f"{tmp}/distinct.jsonl"],
                           check=True, capture_output=True, text=True).stdout
alone = [json.loads(l)["embedding"] for l in alone_out.splitlines()]

server, port = start({"EMBEDDING_MAX_BODY_BYTES": "8000000", "EMBEDDING_MAX_CHUNKS": "20000",
                      "EMBEDDING_IDLE_TIMEOUT": "2"})

# the seed's three cases, all at once from three clients
results = {}


def seed_case(n):
    order = [rng.randrange(len(distinct)) for _ in range(n)]
    chunks = [{"id": f"c{n}-{k}", "text": distinct[j], "metadata": {"k": k}} if k % 3 else distinct[j]
              for k, j in enumerate(order)]
    status, _, data = call(port, "POST", "/embed", {"batch_id": f"b{n}", "chunks": chunks})
    results[n] = (status, data, order)


threads = [threading.Thread(target=seed_case, args=(n,)) for n in (50, 1000, 5000)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for n in (50, 1000, 5000):
    status, data, order = results[n]
    ok = status == 200
    worst = 1.0
    if ok:
        r = json.loads(data)
        embs = r["embeddings"]
        ok = (r["batch_id"] == f"b{n}" and len(embs) == n and r["usage"]["chunks"] == n and r["dimensions"] == 384
              and all(e["index"] == k for k, e in enumerate(embs))
              and all(e["id"] == (f"c{n}-{k}" if k % 3 else None) for k, e in enumerate(embs))
              and all((e.get("metadata") == {"k": k}) if k % 3 else "metadata" not in e for k, e in enumerate(embs)))
        worst = max(maxdiff(e["embedding"], alone[order[k]]) for k, e in enumerate(embs))
        ok = ok and worst <= 1e-6
    check(f"/embed {n} chunks", ok, f"status {status}, max abs diff vs alone {worst:.2g}")

# usage when two requests share batches: each counts a shared batch once and gets its share of the time,
# so neither reports more batches than ran nor more compute than the wall time
def metric(name):
    text = call(port, "GET", "/metrics")[2].decode()
    return float(next(l.split()[1] for l in text.splitlines() if l.startswith(name + " ")))


shared = {}


def shared_case(tag):
    chunks = [f"usage check {tag} {k}: " + distinct[k % len(distinct)][:300] for k in range(600)]
    shared[tag] = call(port, "POST", "/embed", {"chunks": chunks})


b0, w0 = metric("cembed_batches_total"), time.time()
threads = [threading.Thread(target=shared_case, args=(t,)) for t in ("a", "b")]
for t in threads:
    t.start()
for t in threads:
    t.join()
ran, wall_ms = metric("cembed_batches_total") - b0, (time.time() - w0) * 1e3
us = [json.loads(shared[t][2])["usage"] for t in ("a", "b") if shared[t][0] == 200]
check("usage of two requests sharing batches", len(us) == 2 and all(1 <= u["batches"] <= ran for u in us)
      and sum(u["compute_ms"] for u in us) <= wall_ms * 1.05 + 50,
      f"batches {[u['batches'] for u in us]} of {ran:.0f} run, compute_ms {[round(u['compute_ms']) for u in us]} "
      f"in {wall_ms:.0f} ms")

# OpenAI form: floats, base64, dimensions
sample = list(range(20))
status, _, data = call(port, "POST", "/v1/embeddings", {"input": [distinct[i] for i in sample], "model": "x"})
r = json.loads(data) if status == 200 else {}
ok = status == 200 and r["object"] == "list" and [d["index"] for d in r["data"]] == sample
ok = ok and max(maxdiff(d["embedding"], alone[i]) for d, i in zip(r["data"], sample)) <= 1e-6
ok = ok and r["usage"]["prompt_tokens"] > 0
check("/v1/embeddings floats", ok, f"status {status}")
status, _, data = call(port, "POST", "/v1/embeddings", {"input": distinct[3], "encoding_format": "base64"})
ok = status == 200
if ok:
    raw = base64.b64decode(json.loads(data)["data"][0]["embedding"])
    vec = struct.unpack(f"<{len(raw) // 4}f", raw)
    ok = len(vec) == 384 and maxdiff(vec, alone[3]) <= 1e-6
check("/v1/embeddings base64", ok, f"status {status}")
status, _, data = call(port, "POST", "/v1/embeddings", {"input": distinct[4], "dimensions": 64})
ok = status == 200
if ok:
    v = json.loads(data)["data"][0]["embedding"]
    ref = alone[4][:64]
    norm = sum(x * x for x in ref) ** 0.5
    ok = len(v) == 64 and abs(sum(x * x for x in v) - 1) < 1e-5 and maxdiff(v, [x / norm for x in ref]) <= 1e-6
check("/v1/embeddings dimensions=64", ok, f"status {status}")
status, _, data = call(port, "POST", "/tokenize", {"inputs": [distinct[5]]})
tok_ids = json.loads(data)[0]["ids"] if status == 200 else []
status2, _, data2 = call(port, "POST", "/v1/embeddings", {"input": [tok_ids]})
ok = status == 200 and status2 == 200 and maxdiff(json.loads(data2)["data"][0]["embedding"], alone[5]) <= 1e-6
check("/tokenize ids fed back as OpenAI token input", ok, f"status {status}/{status2}")
status, _, data = call(port, "POST", "/embed", {"inputs": [distinct[6], distinct[7]]})
ok = status == 200 and isinstance(json.loads(data), list) and maxdiff(json.loads(data)[1], alone[7]) <= 1e-6
check("/embed TEI inputs form", ok, f"status {status}")
status, _, data = call(port, "POST", "/embed", {"chunks": [distinct[8]], "normalize": False})
ok = status == 200
if ok:
    v = json.loads(data)["embeddings"][0]["embedding"]
    n = sum(x * x for x in v) ** 0.5
    ok = abs(n - 1) > 1e-3 and maxdiff([x / n for x in v], alone[8]) <= 1e-5
check("/embed normalize=false", ok, f"status {status}")


# NDJSON streaming: lines arrive as vectors are computed, then a done line
def stream_case(body, headers, on_port=None):
    c = http.client.HTTPConnection("127.0.0.1", on_port or port, timeout=300)
    t0 = time.time()
    c.request("POST", "/embed", body=json.dumps(body), headers=headers)
    r = c.getresponse()
    lines, first = [], None
    while True:
        line = r.readline()
        if not line:
            break
        if first is None:
            first = time.time() - t0
        lines.append(json.loads(line))
    total = time.time() - t0
    c.close()
    return r.status, r.getheader("Content-Type"), lines, first, total


# on a server without the cache: these chunks were all computed above, and a
# stream of cache hits says nothing about lines arriving before the end
order = [k % len(distinct) for k in range(600)]
nocache, nocache_port = start({"EMBEDDING_CACHE": "off"})
status, ctype, lines, first, total = stream_case(
    {"batch_id": "s1", "stream": True, "chunks": [{"id": f"s{k}", "text": distinct[j]} for k, j in enumerate(order)]},
    {"Content-Type": "application/json"}, nocache_port)
nocache.terminate()
nocache.wait(timeout=60)
vecs = [l for l in lines if "embedding" in l]
done = lines[-1] if lines else {}
ok = (status == 200 and ctype == "application/x-ndjson" and len(vecs) == 600
      and sorted(l["index"] for l in vecs) == list(range(600)) and all(l["id"] == f"s{l['index']}" for l in vecs)
      and done.get("done") is True and done.get("usage", {}).get("chunks") == 600 and done.get("batch_id") == "s1")
worst = max(maxdiff(l["embedding"], alone[order[l["index"]]]) for l in vecs) if vecs else 1
ok = ok and worst <= 1e-6 and first is not None and first < total / 2
check("/embed stream: true (NDJSON)", ok, f"status {status}, {len(vecs)} lines, first after {first:.2f} s of "
      f"{total:.2f} s, max abs diff {worst:.2g}")
status, ctype, lines, first, total = stream_case({"chunks": distinct[:10]},
                                                 {"Content-Type": "application/json", "Accept": "application/x-ndjson"})
ok = status == 200 and len(lines) == 11 and lines[-1].get("done") is True
check("/embed Accept: application/x-ndjson", ok, f"status {status}, {len(lines)} lines")

# bad input: each gets its status, a message naming the problem
def bad(name, want, method, path, body, needle, headers=None):
    try:
        status, hdrs, data = call(port, method, path, body, headers, timeout=60)
    except (OSError, http.client.HTTPException) as e:
        check(name, False, f"exception {e}")
        return
    msg = ""
    try:
        msg = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    check(name, status == want and needle in msg, f"status {status} (want {want}): {msg[:100]}")


long_text = " ".join(["word"] * 600)
bad("malformed JSON", 400, "POST", "/embed", '{"chunks": [', "malformed JSON")
bad("truncated JSON", 400, "POST", "/embed", '{"chunks": ["a", "b"', "malformed JSON")
bad("chunks of the wrong type", 400, "POST", "/embed", {"chunks": 5}, "\"chunks\" must be a list")
bad("chunk of the wrong type", 400, "POST", "/embed", {"chunks": ["a", 7]}, "chunks[1] must be a string or an object")
bad("chunk without text", 400, "POST", "/embed", {"chunks": [{"id": "x"}]}, "chunks[0]: missing \"text\"")
bad("missing chunks", 400, "POST", "/embed", {"batch_id": "b"}, "missing \"chunks\"")
bad("empty list", 400, "POST", "/embed", {"chunks": []}, "the list is empty")
bad("empty body", 400, "POST", "/embed", "", "empty")
bad("invalid UTF-8", 400, "POST", "/embed", b'{"chunks": ["a\xff\xfe"]}', "malformed JSON")
bad("not an object", 400, "POST", "/embed", "[1, 2]", "must be a JSON object")
# a body announced over the limit is refused from its headers, before it is sent
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n")
s.settimeout(30)
head = s.recv(4096).decode(errors="replace")
s.close()
check("body over the limit (refused from Content-Length)", head.startswith("HTTP/1.1 413") and "over the limit of 8000000" in head,
      head.splitlines()[0] if head else "no answer")
bad("a million tiny chunks", 413, "POST", "/embed", '{"chunks": [' + ",".join(['"a"'] * 1000000) + "]}",
    "over the limit")
bad("too many chunks", 413, "POST", "/embed", {"chunks": ["a"] * 20001}, "over the limit of 20000")
bad("nesting 10,000 deep", 400, "POST", "/embed", '{"chunks": ' + "[" * 10000 + "]" * 10000 + "}", "deeper")
bad("over-long chunk with truncate false", 422, "POST", "/embed",
    {"chunks": ["short", {"id": "big.c:1-900", "text": long_text}], "truncate": False}, "chunks[1] (id \"big.c:1-900\")")
bad("bad encoding_format", 400, "POST", "/v1/embeddings", {"input": "a", "encoding_format": "hex"}, "encoding_format")
bad("dimensions over the model's", 400, "POST", "/v1/embeddings", {"input": "a", "dimensions": 1000}, "dimensions")
bad("token id outside the vocabulary", 400, "POST", "/v1/embeddings", {"input": [[5, 99999999]]}, "outside the vocabulary")
bad("unknown route", 404, "GET", "/nope", None, "no route /nope")
bad("wrong method", 405, "GET", "/embed", None, "use POST")
bad("wrong method on health", 405, "POST", "/health", "{}", "use GET")

# a slow client that never finishes its body is cut off by the idle timeout
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"chunks\"")
s.settimeout(15)
t0 = time.time()
try:
    got = s.recv(100)
except socket.timeout:
    got = None
check("slow client is disconnected", got is not None and time.time() - t0 < 14, f"after {time.time() - t0:.1f} s")
s.close()

# the next normal request is answered correctly
status, _, data = call(port, "POST", "/embed", {"chunks": [distinct[9]]})
ok = status == 200 and maxdiff(json.loads(data)["embeddings"][0]["embedding"], alone[9]) <= 1e-6
check("normal request after the bad ones", ok, f"status {status}")

status, _, data = call(port, "GET", "/info")
info = json.loads(data) if status == 200 else {}
check("/info", status == 200 and info.get("dimensions") == 384 and info.get("max_tokens") == 256
      and 0 < info.get("memory_budget_bytes", 0) < info.get("memory_limit_bytes", 0) and info.get("memory_limit_source"),
      data[:120].decode())
status, _, data = call(port, "GET", "/metrics")
text = data.decode()
check("/metrics", status == 200 and 'cembed_requests_total{route="/embed",code="200"}' in text
      and "cembed_batches_total" in text and "cembed_rss_bytes" in text and 'code="413"' in text
      and "cembed_batch_size" in text and "cembed_memory_budget_bytes" in text,
      f"{len(text)} bytes")

# bad settings stop the start with a message naming the variable
for var, val, needle in [("EMBEDDING_MAX_MEMORY_PERCENT", "0", "EMBEDDING_MAX_MEMORY_PERCENT=0"),
                         ("EMBEDDING_ADAPTIVE_BATCHING", "maybe", "EMBEDDING_ADAPTIVE_BATCHING=maybe"),
                         ("EMBEDDING_MIN_BATCH_SIZE", "100", "EMBEDDING_MIN_BATCH_SIZE=100"),
                         ("EMBEDDING_PORT", "70000", "EMBEDDING_PORT=70000"),
                         ("EMBEDDING_PSI_PATH", "/dev/zero", "EMBEDDING_PSI_PATH=/dev/zero")]:   # once spun forever
    r = subprocess.run([cembed, "serve", "--model", model, "--port", "0"], env=dict(os.environ, **{var: val}),
                       capture_output=True, text=True, timeout=60)
    check(f"bad {var} refused at start", r.returncode == 2 and needle in r.stderr, r.stderr.strip()[:100])
log_text = open(f"{tmp}/server-{port}.log").read()
check("start-up logs the memory limit and the batch growth", "memory limit set to" in log_text
      and "increased batch size to 12" in log_text, "")

# memory pressure: a tight budget, and a PSI file that reports stalls (what
# /proc/pressure/memory shows when the host is short of memory); the governor
# trims, halves, retries, and every vector is still the chunk's own (the real
# memory cgroup test is tests/integration/memory_test.py)
long_texts = [json.loads(l)["text"] for l in open(corpus_path, encoding="utf-8") if l.strip()][:200]
with open(f"{tmp}/long.jsonl", "w", encoding="utf-8") as f:
    for i, t in enumerate(long_texts):
        f.write(json.dumps({"id": i, "text": t}) + "\n")
long_alone = [json.loads(l)["embedding"] for l in subprocess.run(
    [cembed, "embed", "--model", model, "--batch-size", "1", f"{tmp}/long.jsonl"],
    check=True, capture_output=True, text=True).stdout.splitlines()]
with open(f"{tmp}/psi", "w") as f:
    f.write("some avg10=80.00 avg60=20.00 avg300=5.00 total=123456\nfull avg10=40.00 avg60=10.00 avg300=2.00 total=6543\n")
# the limit leaves room for the model under ASan too; the pressure comes from the PSI file
tight, tight_port = start({"EMBEDDING_MEMORY_LIMIT": "320000000", "EMBEDDING_PSI_PATH": f"{tmp}/psi"})
status, _, data = call(tight_port, "POST", "/embed", {"chunks": long_texts})
embs = json.loads(data)["embeddings"] if status == 200 else []
worst = max(maxdiff(e["embedding"], long_alone[e["index"]]) for e in embs) if embs else 1
_, _, mtext = call(tight_port, "GET", "/metrics")
# a body without Content-Length that outgrows the request pool: 503 + Retry-After, and the service lives on
# (its growth reservation once gave back bytes it had never taken, and the governor asserted)


def chunked_body():
    yield b'{"chunks": ["'
    for _ in range(60):
        yield b"a" * (1 << 20)
    yield b'"]}'


try:
    cc = http.client.HTTPConnection("127.0.0.1", tight_port, timeout=120)
    cc.request("POST", "/embed", body=chunked_body(), headers={"Content-Type": "application/json"},
               encode_chunked=True)
    cr = cc.getresponse()
    big_status, big_retry = cr.status, cr.getheader("Retry-After")
    cr.read()
    cc.close()
except OSError as e:
    big_status, big_retry = str(e), None
try:
    alive_status = call(tight_port, "GET", "/health")[0]
except OSError as e:
    alive_status = str(e)
check("a chunked body past the request pool is refused with 503, and the service lives on",
      big_status == 503 and big_retry and tight.poll() is None and alive_status in (200, 503),
      f"status {big_status}, Retry-After {big_retry}, alive {tight.poll() is None}")
tight.terminate()
tight.wait(timeout=60)
tlog = open(f"{tmp}/server-{tight_port}.log").read()
ok = (status == 200 and len(embs) == 200 and worst <= 1e-6 and "memory pressure detected, forcing trim" in tlog
      and "reduced batch size to" in tlog and "retrying chunk" in tlog
      and "cembed_memory_pressure_events_total 0" not in mtext.decode())
check("memory pressure: trim, halve, retry, nothing lost", ok,
      f"status {status}, {tlog.count('memory pressure detected')} pressure events, max abs diff {worst:.2g}")

# the cache: the same chunks again come from it, identical to the first answer,
# in every form; a chunk never seen is computed and equal to the chunk alone
fresh_texts = [f"cache check {i}: " + t[:200] for i, t in enumerate(distinct[:30])]
b1 = {"chunks": fresh_texts}
s1, _, d1 = call(port, "POST", "/embed", b1)
s2, _, d2 = call(port, "POST", "/embed", b1)
e1, e2 = json.loads(d1)["embeddings"], json.loads(d2)["embeddings"]
u2 = json.loads(d2)["usage"]
s3, _, d3 = call(port, "POST", "/embed", {"chunks": fresh_texts[:5] + ["never seen before 42"], "stream": True})
lines3 = [json.loads(l) for l in d3.decode().splitlines()]
s4, _, d4 = call(port, "POST", "/v1/embeddings", {"input": fresh_texts[:3]})
ok = (s1 == s2 == s3 == s4 == 200 and not any(e["cached"] for e in e1) and all(e["cached"] for e in e2)
      and u2["cached"] == 30 and u2["batches"] == 0 and [e["embedding"] for e in e1] == [e["embedding"] for e in e2]
      and sum(1 for l in lines3[:-1] if l["cached"]) == 5 and lines3[-1]["usage"]["cached"] == 5
      and all(l["embedding"] == e1[l["index"]]["embedding"] for l in lines3[:-1] if l["index"] < 5)
      and [d["embedding"] for d in json.loads(d4)["data"]] == [e["embedding"] for e in e1[:3]])
_, _, mt = call(port, "GET", "/metrics")
check("cache: repeated chunks come from it, identical, in every form", ok and "cembed_cache_hits_total" in mt.decode(),
      f"usage {u2}")

# HTTP details: 405 names what is allowed, HEAD works where GET does, two Content-Length headers are refused
def raw(port, data, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sk:
        sk.sendall(data)
        out = b""
        while True:
            try:
                chunk = sk.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("POST", "/health", body="{}")
r405 = c.getresponse()
r405.read()
c.request("GET", "/embed")
r405b = c.getresponse()
r405b.read()
c.request("HEAD", "/health")
rhead = c.getresponse()
head_body = rhead.read()
c.close()
dup = raw(port, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"
                b"Content-Length: 2\r\nConnection: close\r\n\r\n" + b'{"chunks": ["abcd"]}')
dup_status = dup.split(b"\r\n", 1)[0]
check("405 carries Allow; HEAD on GET routes; a second Content-Length is refused",
      r405.status == 405 and r405.getheader("Allow") == "GET, HEAD" and r405b.getheader("Allow") == "POST"
      and rhead.status == 200 and head_body == b"" and dup_status.split()[1:2] == [b"400"],
      f"Allow {r405.getheader('Allow')!r} / {r405b.getheader('Allow')!r}, HEAD {rhead.status}, "
      f"two lengths: {dup_status!r}")
s0, _, d0 = call(port, "POST", "/embed", '{"chunks": ["a\\u0000b"]}')
s1, _, d1 = call(port, "POST", "/v1/embeddings", {"input": "x", "dimensions": 1000000000})
m0, m1 = json.loads(d0)["error"]["message"], json.loads(d1)["error"]["message"]
check("\\u0000 and a huge \"dimensions\" get messages that say what is wrong and the limit",
      s0 == 400 and "NUL" in m0 and "JSON_ALLOW_NUL" not in m0 and s1 == 400 and "1000000000" in m1 and "65536" in m1,
      f"{m0!r}; {m1!r}")

# Slow and idle connections do not starve real clients (they once did: one thread per connection, 64 of
# them): 64 sockets dribbling one header byte every 2 s and 2,000 idle ones, all from 127.0.0.1, while a
# client on 127.0.0.2 asks for /health and embeds. The dribblers are closed by the header deadline, the
# idle ones past the per-address limit at once; the server's own count says so.
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
slow_srv, slow_port = start({"EMBEDDING_HEADER_TIMEOUT": "3", "EMBEDDING_MAX_CONNECTIONS_PER_IP": "300"})
stop_dribble = threading.Event()
dribblers, idle, dribble_closed = [], [], [0]


def dribble():
    msg = b"POST /embed HTTP/1.1\r\nHost: x\r\n"
    for i in range(10 ** 6):
        if stop_dribble.wait(2.0):
            return
        for sk in list(dribblers):
            try:
                sk.send(msg[i % len(msg):i % len(msg) + 1])
            except OSError:
                dribblers.remove(sk)
                dribble_closed[0] += 1


for _ in range(64):
    dribblers.append(socket.create_connection(("127.0.0.1", slow_port)))
refused_idle = 0
for _ in range(2000):
    try:
        idle.append(socket.create_connection(("127.0.0.1", slow_port), timeout=5))
    except OSError:
        refused_idle += 1
dt = threading.Thread(target=dribble, daemon=True)
dt.start()


def from_other(method, path, body=None):
    try:
        c = http.client.HTTPConnection("127.0.0.1", slow_port, timeout=30, source_address=("127.0.0.2", 0))
        c.request(method, path, body=json.dumps(body) if body else None, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    except OSError as e:
        return str(e), b""


t_health = time.time()
h_status, _ = from_other("GET", "/health")
t_health = time.time() - t_health
e_status, e_body = from_other("POST", "/embed", {"chunks": [distinct[0]]})
e_vec = json.loads(e_body)["embeddings"][0]["embedding"] if e_status == 200 else []
time.sleep(8)   # past the 3 s header deadline, as the dribblers go on
# the idle sockets past the per-address limit were closed by the server at once
closed_idle = 0
for sk in idle:
    sk.settimeout(0.01)
    try:
        if sk.recv(1) == b"":
            closed_idle += 1
    except socket.timeout:
        pass
    except OSError:
        closed_idle += 1
m_status, metrics = from_other("GET", "/metrics")
deadline_count = [float(l.split()[-1]) for l in metrics.decode().splitlines()
                  if l.startswith("cembed_header_timeouts_total")]
stop_dribble.set()
for sk in dribblers + idle:
    sk.close()
alive = slow_srv.poll() is None
slow_srv.terminate()
slow_srv.wait(timeout=60)
check("64 dribbling and 2,000 idle connections do not starve a real client",
      h_status == 200 and e_status == 200 and maxdiff(e_vec, alone[0]) <= 1e-6 and alive
      and closed_idle >= 2000 - refused_idle - 300 and dribble_closed[0] == 64 and deadline_count
      and deadline_count[0] >= 64,
      f"/health {h_status} in {t_health:.2f} s, /embed {e_status}; idle: {closed_idle} of {len(idle)} closed by the "
      f"per-address limit ({refused_idle} refused); dribblers closed by the header deadline: {dribble_closed[0]}/64, "
      f"counted {deadline_count}")

# SIGHUP (a service manager's reload) does not stop the service
server.send_signal(signal.SIGHUP)
time.sleep(0.5)
sh, _, _ = call(port, "GET", "/health")
check("SIGHUP does not stop the service", server.poll() is None and sh == 200, f"health {sh}")

# SIGTERM drains: an in-flight request completes, more SIGTERMs change nothing, new connections get 503 +
# Retry-After (or are refused at once) and /health says draining; then the process exits 0
box = {}


def inflight():   # not in the cache: it takes a while
    box["r"] = call(port, "POST", "/embed", {"chunks": [f"drain {k}: {t}" for k, t in enumerate(distinct * 3)]})


t = threading.Thread(target=inflight)
t.start()
time.sleep(0.5)
t_sig = time.time()
server.send_signal(signal.SIGTERM)
time.sleep(0.2)
server.send_signal(signal.SIGTERM)
server.send_signal(signal.SIGINT)
late = {}
try:
    late["embed"] = call(port, "POST", "/embed", {"chunks": ["late"]}, timeout=10)
    late["health"] = call(port, "GET", "/health", timeout=10)
except OSError as e:   # refused at once is allowed too
    late["error"] = e
t.join()
rc = server.wait(timeout=120)
t_exit = time.time() - t_sig
status = box["r"][0] if "r" in box else None
ok = status == 200 and len(json.loads(box["r"][2])["embeddings"]) == 1200 and rc == 0
late_ok = ("error" in late and isinstance(late["error"], ConnectionRefusedError)) or (
    late.get("embed", (0,))[0] == 503 and late["embed"][1].get("Retry-After") and late["health"][0] == 503
    and b"draining" in late["health"][2])
check("SIGTERM drains in-flight requests (three signals) and exits 0; late clients get 503 or a refusal",
      ok and late_ok, f"status {status}, exit {rc} after {t_exit:.1f} s; late: "
      f"{late.get('embed', (late.get('error'),))[0]} / {late.get('health', (None,))[0]}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
