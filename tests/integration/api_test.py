#!/usr/bin/env python3
"""The API others have, over real HTTP: prompts, truncation_direction,
dimensions on /embed, /embed_all, /similarity, /v1/models, TEI's timing
headers, API keys (reloaded on SIGHUP), and the official OpenAI client.

usage: api_test.py CEMBED MODEL_DIR TMPDIR

The model is copied with a config_sentence_transformers.json whose prompts
are "query: " and "passage: " (as e5's). Prints one line per check and
"N passed, N failed"."""
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

cembed, model, tmp = sys.argv[1:4]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


work = os.path.join(tmp, "api-test")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
pm = os.path.join(work, "e5-like")
shutil.copytree(model, pm)
with open(os.path.join(pm, "config_sentence_transformers.json"), "w") as f:
    json.dump({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None}, f)
keyfile = os.path.join(work, "keys.txt")
KEY1, KEY2, KEY3 = "sk-test-one", "sk-test-two", "sk-test-three"
with open(keyfile, "w") as f:
    f.write(f"# API keys\n{KEY1}\n\n  {KEY2}  \n")

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
log_path = os.path.join(work, "server.log")
env = dict(os.environ, EMBEDDING_LOG_LEVEL="debug", EMBEDDING_CACHE=os.path.join(work, "cache.sqlite"),
           EMBEDDING_API_KEY_FILE=keyfile)
srv = subprocess.Popen([cembed, "serve", "--model", pm, "--port", str(port)], env=env, stdout=open(log_path, "w"),
                       stderr=subprocess.STDOUT)


def call(method, path, body=None, key=KEY1, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if isinstance(body, (dict, list)) else body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def wait_health(log):
    for _ in range(300):
        try:
            if call("GET", "/health", key=None)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("server did not start: " + open(log).read()[-2000:])


wait_health(log_path)


def embed(body, path="/embed"):
    st, h, d = call("POST", path, body)
    return st, h, json.loads(d) if d else None


def vecs(answer):
    return [e["embedding"] for e in answer["embeddings"]]


def maxdiff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else 1


# prompts: by name = the text itself put before; part of the cache key
st0, _, plain_q = embed({"chunks": ["query: how to sort a list"]})
st1, _, named = embed({"chunks": ["how to sort a list"], "prompt_name": "query"})
st2, _, bare = embed({"chunks": ["how to sort a list"]})
st3, _, custom = embed({"chunks": ["how to sort a list"], "prompt": "query: "})
ok = (st0 == st1 == st2 == st3 == 200 and maxdiff(vecs(named)[0], vecs(plain_q)[0]) == 0
      and named["embeddings"][0]["cached"] is True and bare["embeddings"][0]["cached"] is False
      and maxdiff(vecs(bare)[0], vecs(named)[0]) > 1e-3 and maxdiff(vecs(custom)[0], vecs(plain_q)[0]) == 0)
check("prompt_name \"query\" = the text with \"query: \" before it; the prompt is in the cache key", ok,
      f"{st0} {st1} {st2} {st3}, cached {named['embeddings'][0]['cached'] if named else None}/"
      f"{bare['embeddings'][0]['cached'] if bare else None}")
st, _, oa = embed({"input": ["sorting"], "prompt_name": "passage"}, "/v1/embeddings")
st_b, _, ob = embed({"input": ["passage: sorting"]}, "/v1/embeddings")
st_t, _, tei = embed({"inputs": "sorting", "prompt_name": "passage"})
ok = (st == st_b == st_t == 200 and maxdiff(oa["data"][0]["embedding"], ob["data"][0]["embedding"]) == 0
      and maxdiff(tei[0], ob["data"][0]["embedding"]) == 0)
check("prompt_name on /v1/embeddings and the TEI form", ok, f"{st} {st_b} {st_t}")
st, _, bad = embed({"chunks": ["x"], "prompt_name": "nope"})
st2, _, bad2 = embed({"chunks": ["x"], "prompt_name": "query", "prompt": "a: "})
ok = (st == 400 and "query, passage" in bad["error"]["message"] and st2 == 400 and "exclude" in bad2["error"]["message"])
check("an unknown prompt_name names the model's prompts; prompt with prompt_name is refused", ok,
      f"{st} {bad['error']['message'] if bad else ''} / {st2}")
texts_path = os.path.join(work, "texts.jsonl")
with open(texts_path, "w") as f:
    f.write(json.dumps({"id": 1, "text": "how to sort a list"}) + "\n")
p = subprocess.run([cembed, "embed", "--model", pm, "--prompt-name", "query", texts_path], capture_output=True,
                   text=True, env=dict(os.environ, EMBEDDING_CACHE="off"))
cli_vec = json.loads(p.stdout.splitlines()[0])["embedding"] if p.returncode == 0 else []
p2 = subprocess.run([cembed, "embed", "--model", pm, "--prompt-name", "nope", texts_path], capture_output=True,
                    text=True, env=dict(os.environ, EMBEDDING_CACHE="off"))
check("embed --prompt-name gives the service's vector; an unknown name is refused",
      p.returncode == 0 and maxdiff(cli_vec, vecs(named)[0]) <= 1e-6 and p2.returncode != 0 and "query" in p2.stderr,
      f"rc {p.returncode}/{p2.returncode} {p2.stderr.strip()[-120:]}")
st, _, info = call("GET", "/info")
info = json.loads(info)
check("/info lists the prompts", info.get("prompts") == {"query": "query: ", "passage": "passage: "}
      and info.get("default_prompt_name") is None and info.get("version"), str(info.get("prompts")))

# truncation_direction: left keeps the end: equal to the ids [CLS] + the last 254 tokens + [SEP]
long_text = "word " * 300 + "tail text here"
st, _, tok = embed({"inputs": ["word", "tail text here"]}, "/tokenize")
W = tok[0]["ids"][1]
tail = tok[1]["ids"][1:-1]
cls, sep = tok[0]["ids"][0], tok[0]["ids"][-1]
ids_left = [cls] + ([W] * 300 + tail)[-254:] + [sep]
st_l, _, left = embed({"chunks": [long_text], "truncation_direction": "Left"})
st_r, _, right = embed({"chunks": [long_text], "truncation_direction": "right"})
st_i, _, by_ids = embed({"input": ids_left}, "/v1/embeddings")
ok = (st_l == st_r == st_i == 200 and maxdiff(vecs(left)[0], by_ids["data"][0]["embedding"]) <= 1e-6
      and maxdiff(vecs(left)[0], vecs(right)[0]) > 1e-3 and left["embeddings"][0]["truncated"] is True)
check("truncation_direction left keeps the text's end (= its last tokens as ids)", ok, f"{st_l} {st_r} {st_i}")
st, _, badd = embed({"chunks": ["x"], "truncation_direction": "middle"})
check("a bad truncation_direction names the field", st == 400 and "truncation_direction" in badd["error"]["message"])

# /tokenize's tokens: TEI's {"id","text","special","start","stop"} per token, the offsets (characters) and
# special flags equal to Hugging Face's tokenizers' (Rust, npm "tokenizers"), text = the input's [start, stop)
tok_texts = ["Héllo wörld, naïve café!", "unbelievably  spaced\ttext", "e-mail: foo@bar.com; x=1+2", "日本語 and ÅNGSTRÖM",
             "  leading and trailing  ", "", "don't stop", "long " * 300 + "the end"]
st, _, toks = embed({"inputs": tok_texts}, "/tokenize")
shapes_ok = st == 200 and all(isinstance(r["tokens"], list) and len(r["tokens"]) == len(r["ids"])
                              and [t["id"] for t in r["tokens"]] == r["ids"] for r in toks)
texts_ok = shapes_ok and all(t["special"] or t["text"] == tok_texts[r["index"]][t["start"]:t["stop"]]
                             for r in toks for t in r["tokens"])
check("/tokenize: tokens are TEI's token objects (ids kept), each text = the input's [start, stop)",
      shapes_ok and texts_ok, str(toks[0]["tokens"][:3] if st == 200 else toks)[:300])
st_l, _, toks_l = embed({"inputs": tok_texts[-1], "truncation_direction": "left"}, "/tokenize")
st_n, _, toks_n = embed({"inputs": tok_texts, "add_special_tokens": False}, "/tokenize")
check("/tokenize add_special_tokens false (TEI's): the same without [CLS] and [SEP]",
      st == st_n == 200 and all(a["ids"] == b["ids"][1:-1] and a["tokens"] == b["tokens"][1:-1] for a, b in zip(toks_n, toks)),
      f"{st_n}")
node = shutil.which("node")
if node and os.path.isdir(os.path.join(root, "tests", "oracle", "node_modules", "tokenizers")):
    with open(os.path.join(work, "tok-texts.json"), "w") as f:
        json.dump(tok_texts, f)
    hf = {}
    for d in ("right", "left"):
        p = subprocess.run([node, os.path.join(root, "tests", "oracle", "hf_offsets.mjs"), os.path.join(pm, "tokenizer.json"),
                            os.path.join(work, "tok-texts.json"), "256", d], capture_output=True, text=True, timeout=120)
        hf[d] = json.loads(p.stdout) if p.returncode == 0 else p.stderr[-300:]
    mine = [[{k: t[k] for k in ("id", "special", "start", "stop")} for t in r["tokens"]] for r in toks] if st == 200 else []
    mine_l = [{k: t[k] for k in ("id", "special", "start", "stop")} for t in toks_l[0]["tokens"]] if st_l == 200 else []
    bad = [i for i, (a, b) in enumerate(zip(mine, hf["right"])) if a != b] if isinstance(hf["right"], list) else ["hf"]
    check("/tokenize: ids, special flags and character offsets = HF tokenizers' (8 texts, and one cut from the left)",
          not bad and len(mine) == len(tok_texts) and isinstance(hf["left"], list) and mine_l == hf["left"][-1],
          f"differ: {bad} {str(hf['right'])[:200] if bad == ['hf'] else ''}")
else:
    check("/tokenize against HF tokenizers", False, "tests/oracle/node_modules/tokenizers missing (tests/oracle/install.sh)")

# dimensions on /embed
st, _, full = embed({"chunks": ["matryoshka"]})
st2, _, cut = embed({"chunks": ["matryoshka"], "dimensions": 64})
v, c = vecs(full)[0], vecs(cut)[0] if st2 == 200 else []
n = math.sqrt(sum(x * x for x in v[:64]))
ok = (st2 == 200 and cut["dimensions"] == 64 and len(c) == 64 and maxdiff(c, [x / n for x in v[:64]]) <= 1e-6)
check("dimensions on /embed: the first N, renormalized", ok, f"{st2} {len(c)}")

# /embed_all: every token's vector; their mean (mean pooling) is /embed's
st, h, allv = embed({"inputs": ["hello world, hello cembed"]}, "/embed_all")
st2, _, one = embed({"chunks": ["hello world, hello cembed"], "normalize": False})
ok = st == 200 and len(allv) == 1 and len(allv[0]) == one["embeddings"][0]["tokens"] and len(allv[0][0]) == 384
if ok:
    mean = [sum(t[i] for t in allv[0]) / len(allv[0]) for i in range(384)]
    ok = maxdiff(mean, vecs(one)[0]) <= 1e-5
check("/embed_all: token vectors whose mean is the pooled vector", ok,
      f"{st} {len(allv) if isinstance(allv, list) else allv}")

# /similarity = cosines of /embed's vectors
sents = ["sort a list in python", "list.sort() sorts in place", "the weather is nice"]
st, _, sim = embed({"inputs": {"source_sentence": "how do I sort a list", "sentences": sents}}, "/similarity")
st2, _, ev = embed({"chunks": ["how do I sort a list"] + sents})
e = vecs(ev)
cos = [sum(a * b for a, b in zip(e[0], x)) for x in e[1:]]
check("/similarity: the source's cosine with each sentence", st == 200 and len(sim) == 3 and maxdiff(sim, cos) <= 1e-6
      and sim[0] > sim[2], f"{st} {sim}")
st, _, bads = embed({"inputs": {"source_sentence": "x"}}, "/similarity")
check("/similarity without sentences names the field", st == 400 and "sentences" in bads["error"]["message"])

# /v1/models, timing headers
st, _, models = call("GET", "/v1/models")
models = json.loads(models)
check("/v1/models lists the model", st == 200 and models["data"][0]["id"] == "e5-like", str(models))
st, h, _ = embed({"chunks": ["timing"]})
names = ["x-compute-time", "x-compute-tokens", "x-queue-time", "x-inference-time", "x-tokenization-time",
         "x-total-time"]
check("TEI's timing headers", st == 200 and all(h.get(k, "").isdigit() for k in names),
      str({k: h.get(k) for k in names}))

# API keys
st0, h0, d0 = call("POST", "/embed", {"chunks": ["x"]}, key=None)
st1, h1, d1 = call("POST", "/embed", {"chunks": ["x"]}, key="sk-wrong")
st2, _, _ = call("POST", "/embed", {"chunks": ["x"]}, key=KEY2)
st3, _, _ = call("GET", "/health", key=None)
st4, _, met = call("GET", "/metrics", key=None)
st5, _, _ = call("GET", "/nope", key=None)
fails = [float(l.split()[-1]) for l in met.decode().splitlines() if l.startswith("cembed_auth_failures_total")]
ok = (st0 == st1 == 401 and "Bearer" in h0.get("www-authenticate", "") and json.loads(d0)["error"]["code"] == 401
      and st2 == 200 and st3 == 200 and st4 == 200 and st5 == 401 and fails and fails[0] >= 2)
check("API keys: 401 + WWW-Authenticate without one or with a wrong one; /health and /metrics open; failures counted",
      ok, f"{st0} {st1} {st2} {st3} {st4} {st5} failures {fails}")

# SIGHUP reloads the key file; a request in flight is not dropped
big = {"chunks": [f"chunk {i} " + "text " * 60 for i in range(600)]}
res = {}
t = threading.Thread(target=lambda: res.update(st=call("POST", "/embed", big)[0]))
t.start()
time.sleep(0.3)
with open(keyfile, "w") as f:
    f.write(KEY3 + "\n")
srv.send_signal(signal.SIGHUP)
time.sleep(0.5)
t.join()
st_old, _, _ = call("POST", "/embed", {"chunks": ["x"]}, key=KEY1)
st_new, _, _ = call("POST", "/embed", {"chunks": ["x"]}, key=KEY3)
check("SIGHUP reloads the key file; the request in flight completes", res.get("st") == 200 and st_old == 401
      and st_new == 200 and srv.poll() is None, f"in flight {res.get('st')}, old key {st_old}, new key {st_new}")

# the official OpenAI client, with its key
node = shutil.which("node")
if node and os.path.isdir(os.path.join(root, "tests", "oracle", "node_modules", "openai")):
    p = subprocess.run([node, os.path.join(root, "tests", "oracle", "openai_client.mjs"), f"http://127.0.0.1:{port}/v1",
                        KEY3, "def add(a, b): return a + b", "sorting"], capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {"error": p.stderr[-300:]}
    st, _, direct = embed({"input": ["def add(a, b): return a + b", "sorting"]}, "/v1/embeddings")
    ref = [d["embedding"] for d in direct["data"]] if st == 200 else []
    ok = (not out.get("error") and out["models"] == ["e5-like"] and len(out["float"]) == 2
          and all(maxdiff(a, b) <= 1e-6 for a, b in zip(out["float"], ref))
          and all(maxdiff(a, b) <= 1e-6 for a, b in zip(out["base64"], ref)))
    p2 = subprocess.run([node, os.path.join(root, "tests", "oracle", "openai_client.mjs"),
                         f"http://127.0.0.1:{port}/v1", "sk-wrong", "x"], capture_output=True, text=True, timeout=120)
    out2 = json.loads(p2.stdout) if p2.stdout.strip() else {}
    ok = ok and out2.get("error", {}).get("status") == 401
    check("the OpenAI npm client (models.list, embeddings float and base64) with its API key; a wrong key is 401",
          ok, str(out.get("error", ""))[:200])
else:
    check("the OpenAI npm client", False, "tests/oracle/node_modules/openai missing (tests/oracle/install.sh)")

# POST / as TEI and Inference Endpoints route it: by the body; Hugging Face's own JS client (InferenceClient with
# endpointUrl = this server) gets /embed's and /similarity's answers
src_text, others = "def add(a, b): return a + b", ["sum two numbers", "sorting a list"]


def embed3(body, path="/embed"):  # KEY1 is gone since the reload above
    st, h, d = call("POST", path, body, key=KEY3)
    return st, h, json.loads(d) if d else None


st_e, _, emb_ref = embed3({"inputs": [src_text] + others})
st_s, _, sim_ref = embed3({"inputs": {"source_sentence": src_text, "sentences": others}}, "/similarity")
st_1, _, root_top = embed3({"source_sentence": src_text, "sentences": others}, "/")
st_2, _, root_in = embed3({"inputs": {"source_sentence": src_text, "sentences": others}}, "/")
st_3, _, root_emb = embed3({"inputs": [src_text] + others}, "/")
st_4, _, root_chunks = embed3({"batch_id": "r", "chunks": [src_text]}, "/")
st_5, _, root_rr = embed3({"query": "q", "texts": ["a"]}, "/")
st_6, _, _ = call("GET", "/", key=KEY3)
check("POST /: {inputs} embeds, {source_sentence, sentences} (top or in inputs) is similarity, chunks /embed's form, "
      "a rerank body on an embedding model 400, GET 405",
      st_e == st_s == st_1 == st_2 == st_3 == st_4 == 200 and root_top == root_in == sim_ref and root_emb == emb_ref
      and root_chunks["embeddings"][0]["embedding"] == emb_ref[0] and st_5 == 400 and "embedding model" in
      json.dumps(root_rr) and st_6 == 405, f"{st_e} {st_s} {st_1} {st_2} {st_3} {st_4} {st_5} {st_6}")
if node and os.path.isdir(os.path.join(root, "tests", "oracle", "node_modules", "@huggingface", "inference")):
    p = subprocess.run([node, os.path.join(root, "tests", "oracle", "hf_inference_client.mjs"), f"http://127.0.0.1:{port}",
                        KEY3, src_text] + others, capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {"error": p.stderr[-300:]}
    one, many, sim = out.get("one"), out.get("many"), out.get("similarity")
    ok = (isinstance(one, list) and maxdiff(one[0], emb_ref[0]) <= 1e-6 and isinstance(many, list) and len(many) == 3
          and all(maxdiff(a, b) <= 1e-6 for a, b in zip(many, emb_ref)) and isinstance(sim, list)
          and maxdiff(sim, sim_ref) <= 1e-6)
    p2 = subprocess.run([node, os.path.join(root, "tests", "oracle", "hf_inference_client.mjs"), f"http://127.0.0.1:{port}",
                         "sk-wrong", "x", "y"], capture_output=True, text=True, timeout=120)
    out2 = json.loads(p2.stdout) if p2.stdout.strip() else {}
    ok = ok and (out2.get("one") or {}).get("status") == 401
    check("@huggingface/inference's InferenceClient (endpointUrl): featureExtraction of one and of several texts, "
          "sentenceSimilarity = /embed and /similarity; a wrong key is 401", ok, str(out)[:300])
else:
    check("the @huggingface/inference npm client", False,
          "tests/oracle/node_modules/@huggingface/inference missing (tests/oracle/install.sh)")

srv.send_signal(signal.SIGTERM)
code = srv.wait(timeout=60)
logtext = open(log_path).read()
check("keys never reach the log", all(k not in logtext for k in (KEY1, KEY2, KEY3, "sk-wrong")) and code == 0,
      f"exit {code}")
# several models in one server: --model repeated; requests choose with "model"; one scheduler for all
s2 = socket.socket()
s2.bind(("127.0.0.1", 0))
port2 = s2.getsockname()[1]
s2.close()
log2 = os.path.join(work, "server2.log")
srv2 = subprocess.Popen([cembed, "serve", "--model", pm, "--model", model, "--port", str(port2)],
                        env=dict(os.environ, EMBEDDING_CACHE=os.path.join(work, "cache2.sqlite")),
                        stdout=open(log2, "w"), stderr=subprocess.STDOUT)
port = port2
wait_health(log2)
base = os.path.basename(os.path.normpath(model))
st, _, ml = call("GET", "/v1/models")
ids = [d["id"] for d in json.loads(ml)["data"]] if st == 200 else []
st, _, inf = call("GET", "/info")
inf = json.loads(inf) if st == 200 else {}
check("two models: /v1/models and /info list both", ids == ["e5-like", base] and len(inf.get("models", [])) == 2,
      f"{ids}")
res = {}


def one(name, body, path="/embed"):
    res[name] = embed(body, path)


ths = [threading.Thread(target=one, args=("a", {"model": base, "chunks": [f"text {i}" for i in range(200)]})),
       threading.Thread(target=one, args=("b", {"model": "e5-like", "prompt_name": "query",
                                                 "chunks": [f"text {i}" for i in range(200)]})),
       threading.Thread(target=one, args=("c", {"model": "e5-like", "input": ["text 3"]}, "/v1/embeddings"))]
for t in ths:
    t.start()
for t in ths:
    t.join()
# references: `cembed embed` of each model alone
with open(texts_path, "w") as f:
    f.write(json.dumps({"id": 3, "text": "text 3"}) + "\n")


def cli_vec(m, *extra):
    p = subprocess.run([cembed, "embed", "--model", m, *extra, texts_path], capture_output=True, text=True,
                       env=dict(os.environ, EMBEDDING_CACHE="off"))
    return json.loads(p.stdout.splitlines()[0])["embedding"] if p.returncode == 0 else []


ref_plain, ref_q = {"embeddings": [{"embedding": cli_vec(model)}]}, {"embeddings": [{"embedding": cli_vec(pm, "--prompt-name", "query")}]}
(sa, _, a), (sb, _, b), (sc, _, cc) = res["a"], res["b"], res["c"]
ok = (sa == sb == sc == 200 and a["model"] == base and b["model"] == "e5-like" and cc["model"] == "e5-like"
      and maxdiff(vecs(a)[3], vecs(ref_plain)[0]) <= 1e-6 and maxdiff(vecs(b)[3], vecs(ref_q)[0]) <= 1e-6
      and maxdiff(cc["data"][0]["embedding"], vecs(ref_plain)[0]) <= 1e-6)
st_u, _, unk = embed({"model": "nope", "chunks": ["x"]})
ok = ok and st_u == 404 and "e5-like" in unk["error"]["message"] and base in unk["error"]["message"]
check("\"model\" picks the model (concurrent requests to both are right); an unknown one is 404 naming them", ok,
      f"{sa} {sb} {sc} {st_u}")
srv2.send_signal(signal.SIGTERM)
srv2.wait(timeout=60)
shutil.rmtree(work, ignore_errors=True)   # a copy of the model: make test leaves no large files behind
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
