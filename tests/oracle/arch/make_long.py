#!/usr/bin/python3
"""Long-input goldens (up to 8,192 tokens) for the tiny random-weight models:
tests/golden/arch/NAME/golden-long.json, in golden-torch.json's format
(pooled vectors only, no per-token states), from the same PyTorch ports.

What long inputs exercise that the <= 200-token goldens cannot: rotary at
large positions (ModernBERT, NomicBERT, Qwen), ModernBERT's sliding window far
from the start, ALiBi over long distances (JinaBERT v2), the causal mask of a
long Qwen decoder.

  /usr/bin/python3 tests/oracle/arch/make_long.py [--check] [--sensitivity] [NAME...]
      writes golden-long.json for every model of LONG (or the NAMEs; a rerun
      writes the same bytes); --check also runs the cross-checks below and
      prints 1 - cosine; --sensitivity prints the cosines that plausible
      long-input bugs (bugs() below) give against the goldens
      (about 2 min without the options, 13 min with both, on one core; < 1 GB)

Sequences: lengths 2000, 4096 and 8192, each capped at the model's position
limit (max_position_embeddings, or NomicBERT's n_positions); framed like that
model's golden-torch.json sequences (common.make_sequences: [CLS] filler...
[SEP]; make_models.decoder_sequences: filler... <|endoftext|>), the filler
drawn from the spec's range (no special ids) by a generator seeded with the
spec's seed + 1000. The tiny encoders' sentence_bert_config.json says
max_seq_length 128 (make_models' default); the real checkpoints they mirror
say 8192, so the cap here is the position table, not that file: an engine
run over these files needs a max_seq_length of 8192 (see the note field).

Memory: the ports build every head's full (seq x seq) score matrix; at 8192
tokens that is 256 MB per head and several copies per layer. The attention
functions are therefore swapped (while this script runs) for versions that do
the same operations on blocks of CHUNK query rows: softmax is per row, so the
result is that of the port; main() checks it against the unpatched port on
the 2000-token sequence (max relative error printed).

Cross-checks (--check), on every sequence: Qwen against
selfcheck.indep_qwen (float64, complex rotary, GQA by index, per-query loop);
ModernBERT, NomicBERT and JinaBERT against the float64 per-query loops below
(complex rotary / window by key range / ALiBi from |i - j|), written apart
from the ports as selfcheck's ModernBERT window loop is.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import make_models as M  # noqa: E402
import port_jina  # noqa: E402
import port_modernbert  # noqa: E402
import port_nomic  # noqa: E402
import port_qwen  # noqa: E402
from port_bert import linear  # noqa: E402

LONG = ("modernbert-gte", "modernbert-embed", "jina-v2", "nomic-v15", "qwen3-emb", "qwen2-gte")
LENGTHS = (2000, 4096, 8192)
CHUNK = 1024
FMIN = torch.finfo(torch.float32).min


def position_limit(cfg):
    """Positions the model has: n_positions (NomicBERT) or max_position_embeddings
    (no offset in these families; XLM-R's pad + 1 offset is not among them)."""
    return cfg.get("n_positions") or cfg["max_position_embeddings"]


# ---------------------------------------------------------------- the ports' attention on blocks of queries

def _blocks(s):
    for a in range(0, s, CHUNK):
        yield a, min(s, a + CHUNK)


def mb_attention(w, p, x, layer_id, cfg):
    """port_modernbert.attention, CHUNK query rows at a time."""
    s, h = x.shape
    nh = cfg["num_attention_heads"]
    dh = h // nh
    qkv = linear(w, p + ".Wqkv", x).view(s, 3, nh, dh)
    q, k, v = (qkv[:, i].permute(1, 0, 2) for i in range(3))
    is_global = layer_id % cfg["global_attn_every_n_layers"] == 0
    theta = cfg["global_rope_theta"] if is_global else cfg["local_rope_theta"]
    cos, sin = port_modernbert.rope(s, dh, theta)
    q = q * cos + port_modernbert.rotate_half(q) * sin
    k = k * cos + port_modernbert.rotate_half(k) * sin
    ctx = torch.empty(nh, s, dh)
    cols = torch.arange(s).unsqueeze(0)
    for a, b in _blocks(s):
        scores = torch.matmul(q[:, a:b], k.transpose(-1, -2)) * dh ** -0.5
        if not is_global:
            window = torch.abs(torch.arange(a, b).unsqueeze(1) - cols) <= cfg["local_attention"] // 2
            scores = scores.masked_fill(~window, FMIN)
        ctx[:, a:b] = torch.matmul(torch.softmax(scores, dim=-1), v)
    return linear(w, p + ".Wo", ctx.permute(1, 0, 2).reshape(s, h))


def qwen_attention(w, p, x, cfg, qk_norm, causal):
    """port_qwen.attention, CHUNK query rows at a time."""
    s = x.shape[0]
    nh, nkv, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], port_qwen.head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    q = port_qwen._lin(w, p + ".q_proj", x).view(s, nh, dh)
    k = port_qwen._lin(w, p + ".k_proj", x).view(s, nkv, dh)
    v = port_qwen._lin(w, p + ".v_proj", x).view(s, nkv, dh)
    if qk_norm:
        q = port_qwen.rms_norm(q, w[p + ".q_norm.weight"], eps)
        k = port_qwen.rms_norm(k, w[p + ".k_norm.weight"], eps)
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    cos, sin = port_qwen.rope(s, dh, float(cfg["rope_theta"]))
    q = q * cos + port_qwen.rotate_half(q) * sin
    k = k * cos + port_qwen.rotate_half(k) * sin
    k = port_qwen.repeat_kv(k, nh // nkv)
    v = port_qwen.repeat_kv(v, nh // nkv)
    ctx = torch.empty(nh, s, dh)
    cols = torch.arange(s).unsqueeze(0)
    for a, b in _blocks(s):
        scores = torch.matmul(q[:, a:b], k.transpose(-1, -2)) * dh ** -0.5
        if causal:
            future = cols > torch.arange(a, b).unsqueeze(1)
            scores = scores + torch.zeros(b - a, s).masked_fill(future, FMIN)
        ctx[:, a:b] = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32), v)
    return port_qwen._lin(w, p + ".o_proj", ctx.transpose(0, 1).reshape(s, nh * dh))


def nomic_attention(w, p, x, cfg):
    """port_nomic.attention, CHUNK query rows at a time."""
    s, h = x.shape
    nh = cfg["n_head"]
    dh = h // nh
    qkv = linear(w, p + ".Wqkv", x).view(s, 3, nh, dh)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    ro_dim = dh * cfg["rotary_emb_fraction"]
    if ro_dim > 0:
        assert not cfg.get("rotary_emb_interleaved")
        cos, sin = port_nomic.rotary_tables(s, ro_dim, cfg["rotary_emb_base"])
        q, k = port_nomic.apply_rotary(q, cos, sin), port_nomic.apply_rotary(k, cos, sin)
    q, k, v = (t.permute(1, 0, 2) for t in (q, k, v))
    ctx = torch.empty(nh, s, dh)
    for a, b in _blocks(s):
        scores = torch.matmul(q[:, a:b], k.transpose(-1, -2)) / math.sqrt(dh)
        ctx[:, a:b] = torch.matmul(torch.softmax(scores, dim=-1), v)
    return linear(w, p + ".out_proj", ctx.permute(1, 0, 2).reshape(s, h))


class LazyAlibi:
    """Stands in for port_jina.alibi_bias(n_heads, size): rows() gives the
    same values (-slope_h * |i - j|) for a block of query rows only."""

    def __init__(self, n_heads, size):
        self.slopes = torch.tensor(port_jina.alibi_slopes(n_heads), dtype=torch.float32) * -1
        self.size = size

    def rows(self, a, b):
        rel = torch.abs(torch.arange(self.size)[None, :] - torch.arange(a, b)[:, None])
        return self.slopes[:, None, None] * rel


def jina_self_attention(w, p, x, n_heads, bias=None):
    """port_bert.self_attention with a LazyAlibi bias, CHUNK query rows at a time."""
    s, h = x.shape
    dh = h // n_heads

    def heads(t):
        return t.view(s, n_heads, dh).permute(1, 0, 2)

    q = heads(linear(w, p + ".query", x))
    k = heads(linear(w, p + ".key", x))
    v = heads(linear(w, p + ".value", x))
    ctx = torch.empty(n_heads, s, dh)
    for a, b in _blocks(s):
        scores = torch.matmul(q[:, a:b], k.transpose(-1, -2)) / math.sqrt(dh)
        scores = scores + bias.rows(a, b)
        ctx[:, a:b] = torch.matmul(torch.softmax(scores, dim=-1), v)
    return ctx.permute(1, 0, 2).reshape(s, h)


@contextlib.contextmanager
def chunked():
    """Swaps the ports' attention for the blocked versions above."""
    swaps = [(port_modernbert, "attention", mb_attention), (port_qwen, "attention", qwen_attention),
             (port_nomic, "attention", nomic_attention), (port_jina, "self_attention", jina_self_attention),
             (port_jina, "alibi_bias", LazyAlibi)]
    old = [(m, n, getattr(m, n)) for m, n, _ in swaps]
    for m, n, f in swaps:
        setattr(m, n, f)
    try:
        yield
    finally:
        for m, n, f in old:
            setattr(m, n, f)


# ---------------------------------------------------------------- independent float64 per-query loops

def _rot64(x, inv):
    """Non-interleaved rotary as a complex rotation of the pairs (j, j + r/2):
    x (seq, heads, dh) float64, inv (r/2,) inverse frequencies; dims past r pass."""
    half = inv.shape[0]
    ang = torch.arange(x.shape[0], dtype=torch.float64)[:, None] * inv[None, :]
    z = torch.complex(x[..., :half], x[..., half:2 * half]) * torch.polar(torch.ones_like(ang), ang)[:, None, :]
    return torch.cat([z.real, z.imag, x[..., 2 * half:]], dim=-1)


def _attend_loop(q, k, v, keys, bias=None):
    """q, k, v (seq, heads, dh) float64; keys(i) -> (lo, hi) key range of query i;
    bias(h, i, lo, hi) -> additive scores or None. Per head, per query."""
    s, nh, dh = q.shape
    out = torch.zeros(s, nh, dh, dtype=torch.float64)
    for h in range(nh):
        kh, vh = k[:, h], v[:, h]
        for i in range(s):
            lo, hi = keys(i)
            sc = (kh[lo:hi] @ q[i, h]) / math.sqrt(dh)
            if bias is not None:
                sc = sc + bias(h, i, lo, hi)
            out[i, h] = torch.softmax(sc, 0) @ vh[lo:hi]
    return out.reshape(s, nh * dh)


def _ln64(x, d, name, eps, bias=True):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps) * d[name + ".weight"]
    return y + d[name + ".bias"] if bias else y


def _lin64(d, name, x):
    y = x @ d[name + ".weight"].T
    return y + d[name + ".bias"] if name + ".bias" in d else y


def _gelu64(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def indep_modernbert(w, cfg, ids, prefix):
    d = {k: v.double() for k, v in w.items()}
    nh, H, eps = cfg["num_attention_heads"], cfg["hidden_size"], cfg["norm_eps"]
    dh, nb, n = H // nh, cfg["norm_bias"], len(ids)
    half = cfg["local_attention"] // 2
    x = _ln64(d[prefix + "embeddings.tok_embeddings.weight"][torch.tensor(ids)], d, prefix + "embeddings.norm", eps, nb)
    for i in range(cfg["num_hidden_layers"]):
        p = "%slayers.%d." % (prefix, i)
        glob = i % cfg["global_attn_every_n_layers"] == 0
        theta = cfg["global_rope_theta"] if glob else cfg["local_rope_theta"]
        inv = torch.tensor([theta ** (-2.0 * j / dh) for j in range(dh // 2)], dtype=torch.float64)
        a = x if i == 0 else _ln64(x, d, p + "attn_norm", eps, nb)
        qkv = _lin64(d, p + "attn.Wqkv", a).view(n, 3, nh, dh)
        q, k = _rot64(qkv[:, 0], inv), _rot64(qkv[:, 1], inv)
        keys = (lambda t: (0, n)) if glob else (lambda t: (max(0, t - half), min(n, t + half + 1)))
        x = x + _lin64(d, p + "attn.Wo", _attend_loop(q, k, qkv[:, 2], keys))
        hmid = _lin64(d, p + "mlp.Wi", _ln64(x, d, p + "mlp_norm", eps, nb))
        I = hmid.shape[-1] // 2
        x = x + _lin64(d, p + "mlp.Wo", _gelu64(hmid[:, :I]) * hmid[:, I:])
    return _ln64(x, d, prefix + "final_norm", eps, nb)


def indep_nomic(w, cfg, ids):
    d = {k: v.double() for k, v in w.items()}
    nh, H, eps, n = cfg["n_head"], cfg["n_embd"], cfg["layer_norm_epsilon"], len(ids)
    dh = H // nh
    ro = int(dh * cfg["rotary_emb_fraction"])
    inv = torch.tensor([float(cfg["rotary_emb_base"]) ** (-2.0 * j / ro) for j in range(ro // 2)], dtype=torch.float64)
    tid = torch.tensor(ids)
    x = _ln64(d["embeddings.word_embeddings.weight"][tid] + d["embeddings.token_type_embeddings.weight"][0],
              d, "emb_ln", eps)
    for i in range(cfg["n_layer"]):
        p = "encoder.layers.%d." % i
        qkv = _lin64(d, p + "attn.Wqkv", x).view(n, 3, nh, dh)
        q, k = _rot64(qkv[:, 0], inv), _rot64(qkv[:, 1], inv)
        att = _lin64(d, p + "attn.out_proj", _attend_loop(q, k, qkv[:, 2], lambda t: (0, n)))
        x = _ln64(att + x, d, p + "norm1", eps)
        g = _lin64(d, p + "mlp.fc12", x)
        x = _ln64(_lin64(d, p + "mlp.fc2", _lin64(d, p + "mlp.fc11", x) * g * torch.sigmoid(g)) + x, d, p + "norm2", eps)
    return x


def indep_jina(w, cfg, ids):
    """JinaBERT v2 with ALiBi from |i - j| per query and the 6-head slopes
    written out (4 heads' 2^-2, 2^-4, 2^-6, 2^-8, then 8 heads' 2^-1, 2^-3)."""
    d = {k: v.double() for k, v in w.items()}
    nh, H, eps, n = cfg["num_attention_heads"], cfg["hidden_size"], cfg["layer_norm_eps"], len(ids)
    assert nh == 6
    slopes = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]  # selfcheck.check_alibi's hand values
    dh, I = H // nh, cfg["intermediate_size"]
    pos = torch.arange(n, dtype=torch.float64)
    tid = torch.tensor(ids)
    x = _ln64(d["embeddings.word_embeddings.weight"][tid] + d["embeddings.token_type_embeddings.weight"][0],
              d, "embeddings.LayerNorm", eps)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        q, k, v = (_lin64(d, p + "attention.self." + m, x).view(n, nh, dh) for m in ("query", "key", "value"))
        ctx = _attend_loop(q, k, v, lambda t: (0, n), lambda h, t, lo, hi: -slopes[h] * (pos[lo:hi] - t).abs())
        a = _ln64(_lin64(d, p + "attention.output.dense", ctx) + x, d, p + "attention.output.LayerNorm", eps)
        g = _lin64(d, p + "mlp.gated_layers", a)
        x = _ln64(_lin64(d, p + "mlp.wo", _gelu64(g[:, :I]) * g[:, I:]) + a, d, p + "mlp.layernorm", eps)
    return x


def independent(name, s, w, ids):
    import selfcheck  # noqa: E402  (float64 Qwen loop)
    if name == "qwen3-emb":
        return selfcheck.indep_qwen(w, s.cfg, ids, "", True, True)
    if name == "qwen2-gte":
        return selfcheck.indep_qwen(w, s.cfg, ids, "model.", False, False)
    if name.startswith("modernbert"):
        return indep_modernbert(w, s.cfg, ids, "model." if name == "modernbert-gte" else "")
    if name == "nomic-v15":
        return indep_nomic(w, s.cfg, ids)
    if name == "jina-v2":
        return indep_jina(w, s.cfg, ids)
    raise ValueError(name)


# ---------------------------------------------------------------- plausible long-input bugs

@contextlib.contextmanager
def swap(mod, attr, fn):
    old = getattr(mod, attr)
    setattr(mod, attr, fn)
    try:
        yield
    finally:
        setattr(mod, attr, old)


def wrapped_rope(rope, period):
    """Rotary tables whose positions restart every PERIOD tokens (a table cut short)."""
    def f(s, dh, theta):
        cos, sin = rope(period, dh, theta)
        idx = torch.arange(s) % period
        return cos[idx], sin[idx]
    return f


def bugs(name):
    """(description, context) pairs: engine bugs only long inputs show. Entered
    inside chunked(), so they patch the blocked functions."""
    if name.startswith("modernbert"):
        return [("no sliding window", swap(port_modernbert, "attention", lambda w, p, x, i, cfg: mb_attention(
                    w, p, x, i, dict(cfg, local_attention=10 ** 6)))),
                ("window |i-j| < local/2", swap(port_modernbert, "attention", lambda w, p, x, i, cfg: mb_attention(
                    w, p, x, i, dict(cfg, local_attention=cfg["local_attention"] - 2)))),
                ("rotary positions restart every 1024", swap(port_modernbert, "rope",
                                                             wrapped_rope(port_modernbert.rope, 1024)))]
    if name == "jina-v2":
        return [("alibi slopes as if 6 were a power of two", swap(port_jina, "alibi_slopes",
                                                                 lambda n: [2 ** (-8.0 * (i + 1) / n) for i in range(n)])),
                ("alibi distance capped at 1024", swap(LazyAlibi, "rows", lambda self, a, b: self.slopes[:, None, None]
                    * torch.clamp(torch.abs(torch.arange(self.size)[None, :] - torch.arange(a, b)[:, None]), max=1024)))]
    if name == "nomic-v15":
        rt = port_nomic.rotary_tables
        return [("rotary base 10000", swap(port_nomic, "rotary_tables", lambda s, d, b: rt(s, d, 10000))),
                ("rotary positions restart every 1024", swap(port_nomic, "rotary_tables", lambda s, d, b: tuple(
                    t[torch.arange(s) % 1024] for t in rt(1024, d, b))))]
    qa = qwen_attention
    out = [("rotary positions restart every 1024", swap(port_qwen, "rope", wrapped_rope(port_qwen.rope, 1024)))]
    if name == "qwen3-emb":
        out.append(("no causal mask", swap(port_qwen, "attention",
                                           lambda w, p, x, cfg, qk, causal: qa(w, p, x, cfg, qk, False))))
    else:
        out.append(("causal mask", swap(port_qwen, "attention",
                                        lambda w, p, x, cfg, qk, causal: qa(w, p, x, cfg, qk, True))))
    return out


# ---------------------------------------------------------------- goldens

def sequences(s):
    limit = position_limit(s.cfg)
    lengths = sorted({min(n, limit) for n in LENGTHS})
    lo, hi = s.filler
    if hasattr(s, "seqs"):  # decoders: filler... <|endoftext|>
        return M.decoder_sequences(s.seed + 1000, lo, hi, s.sep, lengths), limit
    return C.make_sequences(s.seed + 1000, lo, hi, s.cls, s.sep, lengths), limit


def cos(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64).reshape(-1), torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    return float((a @ b) / (a.norm() * b.norm()))


def make_one(name, check, sens):
    s = M.TINY[name]()
    d = os.path.join(M.DEFAULT_OUT, s.name)
    w = C.read_safetensors(os.path.join(d, "model.safetensors"))
    ids_list, limit = sequences(s)
    out_seqs, pooled = [], []
    t0 = time.time()
    with torch.no_grad():
        with chunked():
            for ids in ids_list:
                v = C.pool(s.forward(w, ids, None), s.pooling)
                pooled.append(v)
                out_seqs.append({"ids": ids, "type1_from": len(ids), "pooled": C.vec9(v)})
        t_port = time.time() - t0
        # the blocked attention is the port's: compare with the unpatched port on the shortest one
        ref = C.pool(s.forward(w, ids_list[0], None), s.pooling)
        err = float((ref - pooled[0]).abs().max() / ref.abs().max())
    msg = "%-17s lengths %s (limit %d)  port %.1f s  blocked == port at %d: max rel err %.1e" % (
        name, [len(x) for x in ids_list], limit, t_port, len(ids_list[0]), err)
    assert err < 1e-5, msg
    if check:
        for k, ids in enumerate(ids_list):
            t1 = time.time()
            with torch.no_grad():
                h = independent(name, s, w, ids)
            msg += "\n    independent float64 at %d: 1 - cos %.1e (%.0f s)" % (
                len(ids), 1 - cos(C.pool(h, s.pooling), pooled[k]), time.time() - t1)
    if sens:
        for what, ctx in bugs(name):
            with torch.no_grad(), chunked(), ctx:
                c = [cos(C.pool(s.forward(w, ids, None), s.pooling), v) for ids, v in zip(ids_list, pooled)]
            msg += "\n    bug '%s': cos %s" % (what, " ".join("%.5f" % x for x in c))
    st_max = json.load(open(os.path.join(d, "sentence_bert_config.json")))["max_seq_length"]
    g = {"model": s.name, "mirrors": s.mirror, "architecture": s.arch, "source": s.source,
         "pooling": s.pooling, "normalized": False,
         "note": "long inputs (tests/oracle/arch/make_long.py): the longest has %d tokens, so an engine needs "
                 "max_seq_length >= %d; this folder's sentence_bert_config.json says %d" % (
                     len(ids_list[-1]), len(ids_list[-1]), st_max),
         "sequences": out_seqs}
    path = os.path.join(d, "golden-long.json")
    with open(path, "w") as f:
        json.dump(g, f, separators=(",", ":"))
        f.write("\n")
    print(msg + "  %s %d bytes" % (os.path.relpath(path), os.path.getsize(path)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--sensitivity", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("LONG_THREADS", "1")))
    for name in a.names or LONG:
        if name not in LONG:
            sys.exit("unknown model %r; one of: %s" % (name, ", ".join(LONG)))
        make_one(name, a.check, a.sensitivity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
