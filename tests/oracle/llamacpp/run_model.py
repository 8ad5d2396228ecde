#!/usr/bin/python3
"""Runs llama.cpp on one golden model directory and compares with golden-torch.json.

MODEL_DIR holds a Hugging Face checkpoint and golden-torch.json
({"sequences": [{"ids", "type1_from", "pooled", "tokens"?, "logits"?}]}).
Steps: to_gguf.py -> MODEL.gguf (in WORK_DIR; one per label for a classifier
with num_labels > 1 where llama.cpp's RANK head has one output); embed_ids on
the golden's ids (pooled run, plus a per-token run when the golden has
"tokens"); OUT_JSON gets the same structure with llama.cpp's values and
"source": "llama.cpp <commit>".
Prints one summary line per model:
    <name> <arch> min_cos_pooled=... min_cos_tokens=... max_abs_logit=... [FAIL]
The bar is cosine >= 0.99999 for every sequence (pooled and every token) and,
for logits, |llama - torch| <= 1e-4 * max(1, |torch|).  Known miss: this
llama.cpp's CPU GELU is a tanh approximation looked up through an fp16 table,
which alone moves the tiny rerankers' logits by up to ~2e-3 (with an exact erf
GELU swapped into libggml-cpu, ERF_GELU=1 build.sh, they agree to ~1e-6).

Exit status: 0 ran and met the bar, 1 ran and missed it (OUT_JSON still
written), 2 usage or tool error, 3 architecture not in this llama.cpp.

usage: run_model.py MODEL_DIR OUT_JSON WORK_DIR EMBED_IDS COMMIT
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BAR_COS = 0.99999
BAR_LOGIT = 1e-4
LAST_POOLING = 3   # LLAMA_POOLING_TYPE_LAST


def cosine(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def type1_from(s):
    t = s.get("type1_from")
    return -1 if t is None or t < 0 or t >= len(s["ids"]) else int(t)


def run_embed(embed_ids, gguf_path, seqs, ids_path, per_token, extra=()):
    with open(ids_path, "w") as f:
        for s in seqs:
            f.write(" ".join(str(x) for x in [type1_from(s)] + list(s["ids"])) + "\n")
    ctx = max(len(s["ids"]) for s in seqs)
    cmd = [embed_ids, "-c", str(ctx)] + list(extra) + (["-t"] if per_token else []) + [gguf_path, ids_path]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(2)
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    if len(rows) != len(seqs):
        raise SystemExit(f"embed_ids gave {len(rows)} rows for {len(seqs)} sequences")
    return rows


def one_gguf_labels():
    """Newer gguf-py writes classifier.output_labels: all labels in one GGUF."""
    import gguf   # llama.cpp's gguf-py, on PYTHONPATH (run_all.sh)
    return hasattr(gguf.GGUFWriter, "add_classifier_output_labels")


def convert(model_dir, gguf_path, label, name):
    cmd = [sys.executable, os.path.join(HERE, "to_gguf.py"), model_dir, gguf_path]
    p = subprocess.run(cmd + ([] if label is None else [str(label)]),
                       capture_output=True, text=True)
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{name} SKIP {msg}" if p.returncode == 3 else f"{name} ERROR {msg}")
        sys.exit(3 if p.returncode == 3 else 2)
    return gguf_path


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__.strip().splitlines()[-1])
    model_dir, out_json, work, embed_ids, commit = sys.argv[1:]
    name = os.path.basename(os.path.normpath(model_dir))
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["?"])[0]
    labels = [None]
    if arch.endswith("ForSequenceClassification"):
        n = int(cfg.get("num_labels", len(cfg.get("id2label", {"0": 0}))))
        labels = [None] if n == 1 or one_gguf_labels() else list(range(n))
    ggufs = [convert(model_dir, os.path.join(work, f"{name}{'' if k is None else f'-label{k}'}.gguf"),
                     k, name) for k in labels]
    with open(os.path.join(model_dir, "golden-torch.json")) as f:
        golden = json.load(f)
    seqs = golden["sequences"]

    ids_path = os.path.join(work, name + ".ids")
    # decoders: LAST pooling given on the command line too (the 2025-02 tree
    # reads no pooling key for qwen2), non-causal where config.json says so
    extra = (["-P", str(LAST_POOLING)] if golden.get("pooling") == "last" else []) + \
        (["-N"] if cfg.get("is_causal") is False else [])
    pooled = run_embed(embed_ids, ggufs[0], seqs, ids_path, False, extra)
    for g in ggufs[1:]:     # one more label each: append its logit
        for r, more in zip(pooled, run_embed(embed_ids, g, seqs, ids_path, False, extra)):
            r["logits"] = r["logits"] + more["logits"]
    want_tokens = any("tokens" in s for s in seqs)
    toks = run_embed(embed_ids, ggufs[0], seqs, ids_path, True, extra) if want_tokens else None

    out, cos_p, cos_t, dlog, via = [], [], [], [], False
    for i, s in enumerate(seqs):
        o = {"ids": s["ids"], "type1_from": s.get("type1_from")}
        r = pooled[i]
        via = via or r.get("via_embd", False)
        if "pooled" in r:
            o["pooled"] = r["pooled"]
            if "pooled" in s:
                cos_p.append(cosine(r["pooled"], s["pooled"]))
        if "logits" in r:
            o["logits"] = r["logits"]
            if "logits" in s:
                t = np.asarray(s["logits"], np.float64).ravel()
                d = np.abs(np.asarray(r["logits"], np.float64) - t)
                dlog.append(float(np.max(d / np.maximum(1.0, np.abs(t)))))
        if "tokens" in s:       # per-token states only where the golden has them
            o["tokens"] = toks[i]["tokens"]
            cos_t.extend(cosine(a, b) for a, b in zip(o["tokens"], s["tokens"]))
        out.append(o)

    doc = {k: golden[k] for k in ("model", "architecture", "pooling", "normalized")
           if k in golden}
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        weights = hashlib.sha256(f.read()).hexdigest()
    doc.update({"source": f"llama.cpp {commit}",
                "source_repo": os.environ.get("LLAMA_ORIGIN", "unknown"),
                "weights_sha256": weights,   # which model.safetensors this is for
                "sequences": out})
    if len(ggufs) > 1:
        doc["note_labels"] = ("llama.cpp's RANK head has one output: each label's logit "
                              "comes from its own GGUF holding that row of out_proj")
    if via:
        doc["note"] = ("pairs fed as input embeddings word[id]+type[t]-type[0]: this "
                       "llama.cpp adds token type 0 to every token")
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(doc, f)
        f.write("\n")

    ok = all(c >= BAR_COS for c in cos_p + cos_t) and all(d <= BAR_LOGIT for d in dlog)
    parts = [name, arch, f"n={len(seqs)}"]
    if cos_p:
        parts.append(f"min_cos_pooled={min(cos_p):.12f}")
    if cos_t:
        parts.append(f"min_cos_tokens={min(cos_t):.12f}")
    if dlog:
        parts.append(f"max_rel_logit_diff={max(dlog):.3e}")
    if via:
        parts.append("(pairs via embd)")
    if not ok:
        parts.append("FAIL")
    print(" ".join(parts))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
