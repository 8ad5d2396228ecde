#!/usr/bin/env python3
"""`cembed pull` and `--model ORG/NAME` against a local fake Hub (fake_hub.py).

usage: hub_test.py CEMBED MODEL_DIR TMPDIR

First pull (the huggingface_hub cache layout, vectors equal to the folder's),
a second pull that requests no weights, an interrupted download resumed with
Range, a corrupted blob rejected, HF_HUB_OFFLINE, revision pinning, a
private repo and its token (sent to the Hub's host only, never to the CDN it
redirects to), models refused before their weights are fetched, an
unreachable Hub, and the default model found from any folder."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fake_hub import FakeHub, Repo, model_files  # noqa: E402

cembed, model, tmp = sys.argv[1:4]
cembed = os.path.abspath(cembed)
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok   ' if ok else 'FAIL '} {name} {detail}", flush=True)


work = os.path.join(tmp, "hub-test")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
hub = FakeHub()
files = model_files(model)
REPO = "sentence-transformers/all-MiniLM-L6-v2"
hub.add(REPO, Repo(files))
sha_main = hub.repos[REPO].refs["main"]
short = dict(files)
cfg = json.loads(files["sentence_bert_config.json"])
cfg["max_seq_length"] = 128
short["sentence_bert_config.json"] = json.dumps(cfg).encode()
sha_short = hub.add_commit(REPO, short)   # reachable by its commit only
hub.add("acme/private-minilm", Repo(files, private=True))
hub.add("acme/pt-only", Repo({"config.json": files["config.json"], "pytorch_model.bin": b"\0" * 100000,
                              "tokenizer.json": files["tokenizer.json"]}))
gpt = dict(files)
gpt["config.json"] = json.dumps({"model_type": "gpt2", "n_embd": 384}).encode()
hub.add("acme/gpt2-like", Repo(gpt, model_type="gpt2"))
weights_sha = hashlib.sha256(files["model.safetensors"]).hexdigest()


def run(args, cache, extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "EMBEDDING_MODEL", "XDG_"))}
    env.update(HF_HUB_CACHE=cache, HF_ENDPOINT=hub.endpoint, HOME=work, CEMBED_NO_PROGRESS="1",
               EMBEDDING_CACHE="off", XDG_DATA_HOME=os.path.join(work, "no-data"))
    env.update(extra or {})
    t0 = time.time()
    p = subprocess.run([cembed] + args, env=env, capture_output=True, text=True, cwd=cwd, timeout=600)
    return p.returncode, p.stdout, p.stderr, time.time() - t0


def counts():
    with hub.lock:
        return len(hub.requests), len(hub.cdn_requests)


texts = os.path.join(work, "texts.jsonl")
with open(texts, "w") as f:
    for i, t in enumerate(["def add(a, b):\n    return a + b", "import numpy as np", "the quick brown fox"]):
        f.write(json.dumps({"id": i, "text": t}) + "\n")


def vectors(model_arg, cache, extra=None):
    rc, out, err, _ = run(["embed", "--model", model_arg, texts], cache, extra)
    return [json.loads(l)["embedding"] for l in out.splitlines()] if rc == 0 else err


ref = vectors(model, os.path.join(work, "unused"))

# 1. first pull: the Python huggingface_hub layout, and the same vectors as the folder
c1 = os.path.join(work, "cache1")
rc, out, err, _ = run(["pull", REPO], c1)
rdir = os.path.join(c1, "models--sentence-transformers--all-MiniLM-L6-v2")
snap = os.path.join(rdir, "snapshots", sha_main)
link = os.path.join(snap, "model.safetensors")
ok = (rc == 0 and out.strip() == snap and json.loads(run(["info", "--model", REPO], c1)[1])["name"] == REPO and open(os.path.join(rdir, "refs", "main")).read() == sha_main
      and os.path.islink(link) and os.readlink(link) == f"../../blobs/{weights_sha}"
      and os.readlink(os.path.join(snap, "1_Pooling", "config.json")).startswith("../../../blobs/")
      and os.readlink(os.path.join(snap, "config.json")) ==
      "../../blobs/" + hashlib.sha1(b"blob %d\0" % len(files["config.json"]) + files["config.json"]).hexdigest()
      and open(link, "rb").read() == files["model.safetensors"]
      and not [f for f in os.listdir(os.path.join(rdir, "blobs")) if f.endswith(".incomplete")])
check("first pull: huggingface_hub's cache layout (refs, blobs by sha256 / git blob id, relative links)", ok,
      f"rc {rc} {err.strip()[-300:]}")
got = vectors(REPO, c1)
check("--model ORG/NAME embeds exactly as the folder does", isinstance(got, list) and got == ref,
      "" if isinstance(got, list) else got[-300:])

# 2. a second pull asks the API and nothing else
n_hub, n_cdn = counts()
rc, out, err, _ = run(["pull", REPO], c1)
with hub.lock:
    new = hub.requests[n_hub:]
check("second pull: no weights requested", rc == 0 and counts()[1] == n_cdn and all("/api/" in r[1] for r in new),
      f"rc {rc}, new requests {[r[1] for r in new]}")

# 3. an interrupted download resumes with Range
c3 = os.path.join(work, "cache3")
n_hub, n_cdn = counts()
hub.cut_next_after = 1000000
rc, out, err, _ = run(["pull", REPO], c3)
with hub.lock:
    ranges = [r[1] for r in hub.cdn_requests[n_cdn:]]
ok = rc == 0 and "bytes=1000000-" in ranges and open(os.path.join(
    c3, "models--sentence-transformers--all-MiniLM-L6-v2", "blobs", weights_sha), "rb").read() == files["model.safetensors"]
check("an interrupted download is resumed with Range and checked", ok, f"rc {rc}, ranges {ranges} {err.strip()[-200:]}")

# 4. a corrupted blob is rejected, kept nowhere, and the next pull succeeds
c4 = os.path.join(work, "cache4")
hub.corrupt_next = True
rc, out, err, _ = run(["pull", REPO], c4)
blobs4 = os.path.join(c4, "models--sentence-transformers--all-MiniLM-L6-v2", "blobs")
left = os.listdir(blobs4) if os.path.isdir(blobs4) else []
rc2, _, err2, _ = run(["pull", REPO], c4)
ok = (rc != 0 and "corrupted" in err and weights_sha in err and weights_sha not in left
      and not [f for f in left if f.endswith(".incomplete")] and rc2 == 0)
check("a corrupted download is refused (sha256), not kept, and fetched again", ok,
      f"rc {rc}/{rc2}: {err.strip()[-250:]}")

# 5. offline: the cache only, never the network
n = counts()
rc, out, err, _ = run(["info", "--model", REPO], c1, {"HF_HUB_OFFLINE": "1"})
rc2, _, err2, dt = run(["info", "--model", "acme/never-pulled"], c1, {"HF_HUB_OFFLINE": "1"})
ok = rc == 0 and snap in out and counts() == n and rc2 != 0 and "HF_HUB_OFFLINE" in err2 and dt < 10
check("HF_HUB_OFFLINE=1: cached models work with no request; a missing one is a clear error at once", ok,
      f"rc {rc}/{rc2} in {dt:.1f} s: {err2.strip()[-200:]}")

# 6. revision pinning: a commit, and the branch left as it was
rc, out, err, _ = run(["pull", f"{REPO}@{sha_short}"], c1)
rc2, info, err2, _ = run(["info", "--model", f"{REPO}@{sha_short}"], c1, {"HF_HUB_OFFLINE": "1"})
rc3, info_main, _, _ = run(["info", "--model", REPO], c1, {"HF_HUB_OFFLINE": "1"})
ok = (rc == 0 and out.strip().endswith(sha_short) and rc2 == 0 and json.loads(info)["max_seq_len"] == 128
      and json.loads(info_main)["max_seq_len"] == 256 and open(os.path.join(rdir, "refs", "main")).read() == sha_main)
check("revision pinning: REPO@COMMIT is that commit's files; main stays", ok, f"rc {rc}/{rc2}/{rc3} {err.strip()[-200:]}")

# 7. a private repo: a clear error without HF_TOKEN; with it, the token goes to the Hub, never to the CDN
rc, _, err, _ = run(["pull", "acme/private-minilm"], c1)
n_hub, n_cdn = counts()
rc2, _, err2, _ = run(["pull", "acme/private-minilm"], c1, {"HF_TOKEN": hub.token})
with hub.lock:
    hub_auth = {r[2] for r in hub.requests[n_hub:]}
    cdn_auth = [r[2] for r in hub.cdn_requests[n_cdn:]]
ok = (rc != 0 and "acme/private-minilm" in err and "HF_TOKEN" in err and rc2 == 0
      and hub_auth == {f"Bearer {hub.token}"} and cdn_auth and all(a is None for a in cdn_auth))
check("private repo: HF_TOKEN needed, sent to the Hub's host only (not across the redirect)", ok,
      f"rc {rc}/{rc2}: {err.strip()[-160:]}; hub saw {hub_auth}, CDN saw {cdn_auth}")

# 8. models the engine cannot run are refused before anything large is fetched
n_hub, n_cdn = counts()
rc, _, err, _ = run(["pull", "acme/pt-only"], c1)
rc2, _, err2, _ = run(["pull", "acme/gpt2-like"], c1)
ok = (rc != 0 and "model.safetensors" in err and rc2 != 0 and "gpt2" in err2 and counts()[1] == n_cdn
      and not os.path.exists(os.path.join(c1, "models--acme--gpt2-like", "blobs", weights_sha)))
check("no safetensors, or not BERT: refused with the reason, no weights fetched", ok,
      f"{err.strip()[-150:]} | {err2.strip()[-150:]}")

# 9. an unreachable Hub: a clear error, fast; a cached model still works
rc, _, err, dt = run(["pull", "acme/anything"], os.path.join(work, "cache9"), {"HF_ENDPOINT": "http://127.0.0.1:9"})
rc2, _, _, _ = run(["info", "--model", REPO], c1, {"HF_ENDPOINT": "http://127.0.0.1:9"})
check("unreachable Hub: a clear error; the cached revision is used", rc != 0 and "127.0.0.1:9" in err and dt < 60
      and rc2 == 0, f"rc {rc}/{rc2} in {dt:.1f} s: {err.strip()[-200:]}")

# 10. the default model from any folder: the Hub cache's, else the data folder's, else a clear error
anywhere = os.path.join(work, "anywhere")
os.makedirs(anywhere)
rc, out, err, _ = run(["info"], c1, {"HF_HUB_OFFLINE": "1"}, cwd=anywhere)
data = os.path.join(work, "xdg")
os.makedirs(os.path.join(data, "cembed", "models"))
os.symlink(os.path.abspath(model), os.path.join(data, "cembed", "models", "all-MiniLM-L6-v2"))
rc2, out2, err2, _ = run(["info"], os.path.join(work, "empty-cache"), {"HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": data},
                         cwd=anywhere)
rc3, _, err3, _ = run(["info"], os.path.join(work, "empty-cache"), {"HF_HUB_OFFLINE": "1"}, cwd=anywhere)
ok = (rc == 0 and snap in out and rc2 == 0 and os.path.join(data, "cembed", "models") in out2 and rc3 != 0
      and "fetch-model.sh" in err3)
check("the default model resolves from any folder (Hub cache, then the data folder)", ok,
      f"rc {rc}/{rc2}/{rc3}: {err.strip()[-100:]} {err2.strip()[-100:]} {err3.strip()[-150:]}")

# 11. limits (issue 18): a body over its declared size, a dripping answer
hub.flood = "config.json"
c11 = os.path.join(work, "cache11")
rc, _, err, dt = run(["pull", REPO], c11)
hub.flood = None
blobs11 = os.path.join(c11, "models--sentence-transformers--all-MiniLM-L6-v2", "blobs")
biggest = max([os.path.getsize(os.path.join(blobs11, f)) for f in os.listdir(blobs11)] or [0]) \
    if os.path.isdir(blobs11) else 0
check("a file streamed past its declared size is cut there, refused and not kept", rc != 0 and "declared" in err
      and biggest <= len(files["config.json"]) and dt < 30, f"rc {rc} in {dt:.1f} s, largest blob {biggest}: "
      f"{err.strip()[-200:]}")
for what in ("api", "config.json"):
    hub.drip = what
    rc, _, err, dt = run(["pull", REPO], os.path.join(work, "cache11-" + what.replace(".", "-")),
                         {"HF_HUB_DOWNLOAD_TIMEOUT": "2"})
    hub.drip = None
    check(f"an answer dripped at 2 bytes/s ({what}) fails after HF_HUB_DOWNLOAD_TIMEOUT, naming it", rc != 0
          and "HF_HUB_DOWNLOAD_TIMEOUT" in err and dt < 30, f"rc {rc} in {dt:.1f} s: {err.strip()[-200:]}")

# 12. revisions are Git refs: "main/" is refused and leaves the cache usable
c12 = os.path.join(work, "cache12")
rc0, _, _, _ = run(["pull", REPO], c12)
bad = [run(["pull", f"{REPO}@{r}"], c12) for r in ("main/", "/main", "a//b", ".hidden", "x.lock", "v1.")]
rc2, out2, err2, _ = run(["pull", REPO], c12)
ref12 = os.path.join(c12, "models--sentence-transformers--all-MiniLM-L6-v2", "refs", "main")
check("revisions that are not Git refs (main/, /main, a//b, .hidden, x.lock, v1.) are refused; the cache stays usable",
      rc0 == 0 and all(b[0] == 2 and "revision" in b[2] for b in bad) and rc2 == 0 and os.path.isfile(ref12),
      f"{[(b[0], b[2].strip()[-80:]) for b in bad][:2]} then rc {rc2} {err2.strip()[-150:]}")

# 13. one error message, built once: the config's own reason after "cannot run here: ", not garbled
odd = dict(files)
odd["config.json"] = json.dumps({"model_type": "t5", "hidden_size": 384}).encode()
hub.add("evil/t5-in-disguise", Repo(odd))   # the API says bert; the config says otherwise
rc, _, err, _ = run(["pull", "evil/t5-in-disguise"], os.path.join(work, "cache13"))
msg = err.strip().splitlines()[-1] if err.strip() else ""
check("the config's error reads once, after \"evil/... cannot run here: \"", rc != 0 and msg.count("cannot run here") == 1
      and "evil/t5-in-disguise cannot run here: " in msg and "t5" in msg.split("cannot run here: ")[1], msg)

# 14. HF_TOKEN over 511 bytes is refused, not cut; a password in HF_ENDPOINT is never shown
rc, _, err, _ = run(["pull", "acme/private-minilm"], os.path.join(work, "cache14"), {"HF_TOKEN": "h" * 600})
ep = hub.endpoint.replace("http://", "http://user:s3cr3t-pass@")
rc2, _, err2, _ = run(["pull", "acme/no-such-repo"], os.path.join(work, "cache14"), {"HF_ENDPOINT": ep})
rc3, _, err3, _ = run(["pull", "acme/x"], os.path.join(work, "cache14"),
                      {"HF_ENDPOINT": "http://user:s3cr3t-pass@127.0.0.1:9"})
check("an HF_TOKEN over 511 bytes is an error naming it; HF_ENDPOINT's password never appears in errors",
      rc != 0 and "HF_TOKEN" in err and "600" in err and rc2 != 0 and rc3 != 0
      and "s3cr3t" not in err2 + err3 and "***" in err2 + err3,
      f"{err.strip()[-120:]} | {err2.strip()[-120:]} | {err3.strip()[-120:]}")

# 15. a mirror without blob ids in its API answer: the ETag of each file's resolve answer, as huggingface_hub
hub.no_blob_ids = True
c15 = os.path.join(work, "cache15")
rc, out, err, _ = run(["pull", REPO], c15)
hub.no_blob_ids = False
link15 = os.path.join(out.strip(), "model.safetensors")
got = vectors(REPO, c15) if rc == 0 else err
check("an API answer without blob ids: each file's ETag from its resolve answer (HEAD); same layout and vectors",
      rc == 0 and os.path.islink(link15) and os.readlink(link15) == f"../../blobs/{weights_sha}" and got == ref,
      f"rc {rc}: {err.strip()[-200:]}")

# 16. pull's output that cannot be written is an error with its cause (it was exit 1 without a word)
env16 = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
env16.update(HF_HUB_CACHE=c1, HF_ENDPOINT=hub.endpoint, HOME=work, CEMBED_NO_PROGRESS="1")
with open("/dev/full", "w") as full:
    p16 = subprocess.run([cembed, "pull", REPO], env=env16, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
check("pull > /dev/full: exit 1 naming the cause", p16.returncode == 1 and "No space left on device" in p16.stderr,
      f"rc {p16.returncode}: {p16.stderr.strip()[-150:]}")

hub.close()
shutil.rmtree(work, ignore_errors=True)   # a few copies of the model's weights
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
