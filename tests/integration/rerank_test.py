#!/usr/bin/env python3
"""Reranking end to end, over real HTTP and the CLI, against logits nobody
here computed with cembed: tests/golden/arch/ce-bert is a random-weight
cross-encoder laid out as cross-encoder/ms-marco-MiniLM-L-6-v2
(BertForSequenceClassification), and its golden-torch.json holds a PyTorch
port's logit for each (query, document) pair of token ids. Its vocabulary is
"tokN" words, so each pair is written back as text: "tok17 tok40" is ids
17, 40, and cembed's own tokenizer and pair template ([CLS] q [SEP] d [SEP],
token types 0 then 1) must rebuild the golden ids.

Checks: TEI's POST /rerank (sigmoid scores, raw_scores, return_text, sorted
best first), the /v1/rerank form (documents as strings and objects, top_n,
return_documents, usage), `cembed rerank`, /info's kind, and the 4xx a
reranker gives to embedding routes and an embedding model to /rerank.

usage: rerank_test.py CEMBED TMPDIR
Prints one line per check and "N passed, N failed"."""
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

cembed, tmp = sys.argv[1:3]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ce = os.path.join(root, "tests", "golden", "arch", "ce-bert")
emb = os.path.join(root, "tests", "golden", "arch", "bert-minilm")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# (query, document, logit) from the golden pairs: ids [CLS] q.. [SEP] d.. [SEP]
pairs = []
for s in json.load(open(os.path.join(ce, "golden-torch.json")))["sequences"]:
    ids, t = s["ids"], s["type1_from"]
    words = lambda a: " ".join(f"tok{x}" for x in a)
    if t >= 3 and len(ids) - t >= 2:
        pairs.append((words(ids[1:t - 1]), words(ids[t:-1]), s["logits"][0]))
check("golden pairs to test", len(pairs) >= 5, f"({len(pairs)})")

work = os.path.join(tmp, "rerank-test")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(model, name):
    port = free_port()
    log = open(os.path.join(work, name + ".log"), "w")
    env = dict(os.environ, EMBEDDING_CACHE=os.path.join(work, name + ".sqlite"), EMBEDDING_PRECISION="fp32")
    p = subprocess.Popen([cembed, "serve", "--model", model, "--port", str(port)], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            if call(port, "GET", "/health")[0] == 200:
                return p, port
        except OSError:
            time.sleep(0.1)
    sys.exit("server did not start: " + open(log.name).read()[-2000:])


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def post(port, path, body):
    st, data = call(port, "POST", path, body)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


srv, port = start(ce, "ce")
try:
    info = json.loads(call(port, "GET", "/info")[1])
    check("/info says reranker", info.get("kind") == "reranker" and info.get("dimensions") == 1,
          f"({info.get('kind')}, {info.get('dimensions')})")
    # each golden pair with the other documents as distractors: its score is the sigmoid of the golden logit
    others = [d for _, d, _ in pairs]
    worst = 0.0
    for q, d, logit in pairs:
        st, res = post(port, "/rerank", {"query": q, "texts": [d] + others, "return_text": True})
        if st != 200:
            check("/rerank answers", False, f"{st} {res}")
            break
        mine = [r for r in res if r["index"] == 0][0]
        worst = max(worst, abs(mine["score"] - sigmoid(logit)))
        ordered = all(res[i]["score"] >= res[i + 1]["score"] for i in range(len(res) - 1))
        if not ordered or mine["text"] != d or len(res) != len(others) + 1:
            check("/rerank sorted, with texts", False, json.dumps(res)[:300])
            break
    check("/rerank score = sigmoid(torch logit) for every golden pair", worst < 1e-5, f"(max diff {worst:.2e})")
    q, d, logit = pairs[1]
    st, res = post(port, "/rerank", {"query": q, "texts": [d], "raw_scores": True})
    check("/rerank raw_scores is the logit", st == 200 and abs(res[0]["score"] - logit) < 1e-4 and "text" not in res[0],
          f"({res})")
    st, res = post(port, "/v1/rerank", {"model": "ce-bert", "query": q, "top_n": 2, "return_documents": True,
                                        "documents": [others[0], {"text": d}, others[2]]})
    ok = (st == 200 and len(res["results"]) == 2 and res["model"] == "ce-bert" and res["usage"]["total_tokens"] > 0
          and res["results"][0]["relevance_score"] >= res["results"][1]["relevance_score"]
          and all("document" in r and "text" in r["document"] for r in res["results"]))
    check("/v1/rerank: top_n, documents as strings and objects, return_documents, usage", ok, json.dumps(res)[:300])
    st, full = post(port, "/v1/rerank", {"query": q, "documents": [others[0], d, others[2]]})
    mine = [r for r in full["results"] if r["index"] == 1]
    check("/v1/rerank relevance_score = sigmoid(logit)", st == 200 and mine and
          abs(mine[0]["relevance_score"] - sigmoid(logit)) < 1e-5 and "document" not in mine[0], json.dumps(full)[:300])
    st_root, root = post(port, "/", {"query": q, "texts": [others[0], d, others[2]], "raw_scores": True})
    st_tei, tei = post(port, "/rerank", {"query": q, "texts": [others[0], d, others[2]], "raw_scores": True})
    st_emb, emb_ans = post(port, "/", {"inputs": ["x"]})
    check("POST / with a rerank body on a reranker = /rerank (TEI's root); {\"inputs\"} is 400 naming /rerank",
          st_root == st_tei == 200 and root == tei and st_emb == 400 and "/rerank" in json.dumps(emb_ans),
          f"({st_root} {st_tei} {st_emb})")
    st, res = post(port, "/rerank", {"query": q, "texts": [d], "raw_scores": True})
    st2, res2 = post(port, "/rerank", {"query": q, "texts": [d], "raw_scores": True})
    check("a cached pair gives the same score", st2 == 200 and res2 == res)
    for path, body in (("/embed", {"inputs": "tok5"}), ("/v1/embeddings", {"input": "tok5"}),
                       ("/similarity", {"inputs": {"source_sentence": "tok5", "sentences": ["tok6"]}})):
        st, res = post(port, path, body)
        check(f"{path} on a reranker is 400 naming /rerank", st == 400 and "/rerank" in json.dumps(res), f"({st})")
    for body, want in (({"texts": ["a"]}, "query"), ({"query": "a"}, "texts"), ({"query": "a", "texts": "a"}, "list"),
                       ({"query": "a", "texts": ["a", 3]}, "texts[1]"), ({"query": "a", "documents": ["a"], "top_n": 0},
                                                                         "top_n"),
                       ({"query": "a", "texts": []}, "empty")):
        st, res = post(port, "/v1/rerank" if "documents" in body else "/rerank", body)
        check(f"bad body {json.dumps(body)} is 400 naming {want}", st == 400 and want in json.dumps(res), f"({st} {res})")
    long_doc = " ".join(f"tok{5 + i % 300}" for i in range(400))
    st, res = post(port, "/rerank", {"query": q, "texts": ["tok5", long_doc], "truncate": False})
    check("a pair over the limit with truncate false is 422 naming texts[1]", st == 422 and "texts[1]" in json.dumps(res),
          f"({st} {res})")
    st, res = post(port, "/rerank", {"query": q, "texts": ["tok5", long_doc]})
    check("... and scored when truncated", st == 200 and len(res) == 2, f"({st})")
    st, _ = post(port, "/tokenize", {"inputs": "tok5 tok6"})
    check("/tokenize works on a reranker", st == 200)
finally:
    srv.terminate()
    srv.wait()

# the CLI: the same scores, best first
docs = os.path.join(work, "docs.jsonl")
q, d, logit = pairs[2]
with open(docs, "w") as f:
    for i, doc in enumerate([pairs[0][1], d, pairs[3][1]]):
        f.write(json.dumps({"id": f"doc{i}", "text": doc}) + "\n")
r = subprocess.run([cembed, "rerank", "--model", ce, "--precision", "fp32", q, docs], capture_output=True, text=True)
lines = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
mine = [x for x in lines if x["id"] == "doc1"]
check("cembed rerank: sorted lines, the golden pair's score", r.returncode == 0 and len(lines) == 3 and mine and
      abs(mine[0]["score"] - sigmoid(logit)) < 1e-5 and lines[0]["score"] >= lines[1]["score"] >= lines[2]["score"],
      r.stdout[:300] + r.stderr[-300:])
r = subprocess.run([cembed, "rerank", "--model", ce, "--precision", "fp32", "--top-n", "1", "--raw-scores", q, docs],
                   capture_output=True, text=True)
lines = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
check("cembed rerank --top-n 1 --raw-scores: one line, a logit (not a sigmoid)",
      len(lines) == 1 and lines[0]["id"] == "doc1" and abs(lines[0]["score"] - logit) < 1e-4, r.stdout[:200])
r = subprocess.run([cembed, "rerank", "--model", emb, "q", docs], capture_output=True, text=True)
check("cembed rerank with an embedding model exits 1 naming it", r.returncode == 1 and "embedding model" in r.stderr,
      r.stderr[-200:])

r = subprocess.run([cembed, "embed", "--model", ce, "-"], input='{"text": "tok5"}\n', capture_output=True, text=True)
check("cembed embed with a reranker exits 1 naming cembed rerank", r.returncode == 1 and "cembed rerank" in r.stderr,
      r.stderr[-200:])

# an embedding model refuses /rerank
srv, port = start(emb, "emb")
try:
    st, res = post(port, "/rerank", {"query": "tok5", "texts": ["tok6"]})
    check("/rerank on an embedding model is 400 naming a cross-encoder", st == 400 and "cross-encoder" in json.dumps(res),
          f"({st} {res})")
finally:
    srv.terminate()
    srv.wait()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
