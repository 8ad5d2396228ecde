#!/usr/bin/python3
"""Checks the ports and the committed goldens without the real libraries:

1. golden-torch.json still matches what the ports compute from the committed
   model.safetensors (bit-for-bit up to the 9 printed digits).
2. Independent re-implementations agree with the ports: BERT/XLM-R layers
   against torch.nn.TransformerEncoderLayer; rotary against a complex-number
   RoPE; the ALiBi slopes against hand-computed values; ModernBERT's local
   layers against a per-query loop over the window.
3. Sensitivity: plausible engine bugs (positions off by one, rotary base or
   pairing, ALiBi slopes, GLU halves swapped, window off by one or missing,
   token types ignored) each move the outputs far below the 0.99999 cosine
   bar, so the goldens can catch them.

  /usr/bin/python3 tests/oracle/arch/selfcheck.py     (prints one line per check; exit 1 on a failure)
"""
import contextlib
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import make_models as M  # noqa: E402
import port_bert  # noqa: E402
import port_jina  # noqa: E402
import port_modernbert  # noqa: E402
import port_nomic  # noqa: E402
import port_qwen  # noqa: E402
import port_xlmr  # noqa: E402

FAILS = []


def check(ok, what):
    print("%s  %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        FAILS.append(what)


def cos(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64).reshape(-1), torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    return float((a @ b) / (a.norm() * b.norm()))


def load(name):
    s = M.TINY[name]()
    d = os.path.join(M.DEFAULT_OUT, s.name)
    w = C.read_safetensors(os.path.join(d, "model.safetensors"))
    g = json.load(open(os.path.join(d, "golden-torch.json")))
    return s, w, g


def outputs(s, w, g):
    res = []
    with torch.no_grad():
        for e in g["sequences"]:
            ids = e["ids"]
            if s.kind == "embed":
                res.append(C.pool(s.forward(w, ids, None), s.pooling))
            else:
                t1 = e["type1_from"]
                res.append(s.forward(w, ids, [0] * t1 + [1] * (len(ids) - t1)))
    return res


def golden_vecs(s, g):
    return [torch.tensor(e["pooled"] if s.kind == "embed" else e["logits"]) for e in g["sequences"]]


def reproduce(name):
    s, w, g = load(name)
    got = outputs(s, w, g)
    want = golden_vecs(s, g)
    err = max(float((a - b).abs().max() / (b.abs().max() + 1e-30)) for a, b in zip(got, want))
    check(err < 1e-6, "%-17s golden reproduces from model.safetensors (max rel err %.1e)" % (name, err))


# ---------------------------------------------------------------- independent implementations

def nn_bert_stack(w, cfg, x, prefix):
    """torch.nn.TransformerEncoderLayer (post-norm, gelu) with BERT's weights."""
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = "%sencoder.layer.%d." % (prefix, i)
        layer = torch.nn.TransformerEncoderLayer(H, nh, cfg["intermediate_size"], dropout=0.0, activation="gelu",
                                                 layer_norm_eps=cfg["layer_norm_eps"], batch_first=True)
        layer.eval()
        sd = {
            "self_attn.in_proj_weight": torch.cat([w[p + "attention.self.%s.weight" % m] for m in ("query", "key", "value")]),
            "self_attn.in_proj_bias": torch.cat([w[p + "attention.self.%s.bias" % m] for m in ("query", "key", "value")]),
            "self_attn.out_proj.weight": w[p + "attention.output.dense.weight"],
            "self_attn.out_proj.bias": w[p + "attention.output.dense.bias"],
            "norm1.weight": w[p + "attention.output.LayerNorm.weight"], "norm1.bias": w[p + "attention.output.LayerNorm.bias"],
            "linear1.weight": w[p + "intermediate.dense.weight"], "linear1.bias": w[p + "intermediate.dense.bias"],
            "linear2.weight": w[p + "output.dense.weight"], "linear2.bias": w[p + "output.dense.bias"],
            "norm2.weight": w[p + "output.LayerNorm.weight"], "norm2.bias": w[p + "output.LayerNorm.bias"],
        }
        layer.load_state_dict(sd)
        x = layer(x.unsqueeze(0)).squeeze(0)
    return x


def check_bert_vs_nn():
    for name, prefix, xlmr in (("bert-minilm", "", False), ("bert-prefix", "bert.", False), ("xlmr-e5", "", True)):
        s, w, g = load(name)
        cfg = s.cfg
        worst = 1.0
        with torch.no_grad():
            for e in g["sequences"]:
                ids = torch.tensor(e["ids"])
                n = len(ids)
                # positions written out by hand: BERT 0..n-1, XLM-R pad+1..pad+n
                pos = torch.arange(n) + (cfg["pad_token_id"] + 1 if xlmr else 0)
                x = (w[prefix + "embeddings.word_embeddings.weight"][ids]
                     + w[prefix + "embeddings.position_embeddings.weight"][pos]
                     + w[prefix + "embeddings.token_type_embeddings.weight"][0])
                x = F.layer_norm(x, (x.shape[-1],), w[prefix + "embeddings.LayerNorm.weight"],
                                 w[prefix + "embeddings.LayerNorm.bias"], cfg["layer_norm_eps"])
                h = nn_bert_stack(w, cfg, x, prefix)
                worst = min(worst, cos(C.pool(h, s.pooling), e["pooled"]))
        check(worst > 0.999999, "%-17s port == torch.nn.TransformerEncoderLayer stack (min cos %.9f)" % (name, worst))


def check_rotary_complex():
    """Non-interleaved RoPE as complex rotation of pairs (j, j + ro/2)."""
    torch.manual_seed(0)
    for dh, frac, base in ((16, 1.0, 1000), (32, 0.5, 1000), (32, 1.0, 160000.0)):
        s = 50
        x = torch.randn(s, 3, dh)
        ro = int(dh * frac)
        cos_, sin_ = port_nomic.rotary_tables(s, dh * frac, base)
        got = port_nomic.apply_rotary(x, cos_, sin_)
        half = ro // 2
        z = torch.complex(x[..., :half].double(), x[..., half:ro].double())
        theta = torch.tensor([[p * base ** (-2.0 * j / ro) for j in range(half)] for p in range(s)], dtype=torch.float64)
        z = z * torch.polar(torch.ones_like(theta), theta)[:, None, :]
        want = torch.cat([z.real, z.imag, x[..., ro:].double()], dim=-1)
        err = float((got.double() - want).abs().max())
        check(err < 1e-4, "rotary dh %d fraction %.1f base %g == complex rotation (max err %.1e)" % (dh, frac, base, err))
        if frac == 1.0:
            c2, s2 = port_modernbert.rope(s, dh, base)
            q = x[:, 0, :]
            got2 = q * c2 + port_modernbert.rotate_half(q) * s2
            err2 = float((got2.double() - want[:, 0, :]).abs().max())
            check(err2 < 1e-4, "modernbert rope dh %d theta %g == complex rotation (max err %.1e)" % (dh, base, err2))


def check_alibi():
    want6 = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]
    got6 = port_jina.alibi_slopes(6)
    check(all(abs(a - b) < 1e-12 for a, b in zip(got6, want6)), "alibi slopes for 6 heads %s" % got6)
    got8 = port_jina.alibi_slopes(8)
    check(all(abs(a - 2 ** -(i + 1)) < 1e-12 for i, a in enumerate(got8)), "alibi slopes for 8 heads 2^-1..2^-8")
    b = port_jina.alibi_bias(6, 5)
    check(float(b[3, 0, 3]) == -3 * 2 ** -8 and float(b[3, 3, 0]) == -3 * 2 ** -8 and float(b[4, 1, 3]) == -1.0,
          "alibi bias symmetric -slope*|i-j|")


def check_modernbert_window_loop():
    """Local layer: every query attends exactly to keys with |i-j| <= local//2, recomputed per query."""
    s, w, g = load("modernbert-gte")
    cfg = s.cfg
    torch.manual_seed(1)
    x = torch.randn(40, cfg["hidden_size"])
    p = "model.layers.1.attn"
    got = port_modernbert.attention(w, p, x, 1, cfg)
    nh = cfg["num_attention_heads"]
    dh = cfg["hidden_size"] // nh
    qkv = F.linear(x, w[p + ".Wqkv.weight"]).view(40, 3, nh, dh)
    half = cfg["local_attention"] // 2
    inv = [cfg["local_rope_theta"] ** (-2.0 * j / dh) for j in range(dh // 2)]
    out = torch.zeros(40, nh, dh, dtype=torch.float64)

    def rot(v, pos):
        z = torch.complex(v[: dh // 2].double(), v[dh // 2:].double())
        z = z * torch.polar(torch.ones(dh // 2, dtype=torch.float64), torch.tensor(inv, dtype=torch.float64) * pos)
        return torch.cat([z.real, z.imag])

    for h in range(nh):
        for i in range(40):
            js = [j for j in range(40) if abs(i - j) <= half]
            qi = rot(qkv[i, 0, h], i)
            sc = torch.stack([qi @ rot(qkv[j, 1, h], j) for j in js]) / math.sqrt(dh)
            pr = torch.softmax(sc, 0)
            out[i, h] = sum(pr[k] * qkv[j, 2, h].double() for k, j in enumerate(js))
    want = F.linear(out.reshape(40, -1).float(), w[p + ".Wo.weight"])
    err = float((got - want).abs().max())
    check(err < 1e-4, "modernbert local layer == per-query window loop (max err %.1e)" % err)


# ---------------------------------------------------------------- sensitivity

@contextlib.contextmanager
def patched(mod, name, fn):
    old = getattr(mod, name)
    setattr(mod, name, fn)
    try:
        yield
    finally:
        setattr(mod, name, old)


def sensitivity(name, what, mod, attr, fn, bar=0.99999):
    s, w, g = load(name)
    with patched(mod, attr, fn):
        got = outputs(s, w, g)
    want = golden_vecs(s, g)
    if s.kind == "embed":
        cs = [cos(a, b) for a, b in zip(got, want)]
    else:  # logits: a 1-label cosine is always 1; use 1 - relative error instead
        cs = [1 - float((a - b).abs().max() / max(1.0, float(b.abs().max()))) for a, b in zip(got, want)]
    caught = sum(c < bar for c in cs)
    # sequences that cannot show the bug (length 1, or shorter than a window) may stay equal
    check(caught >= len(cs) // 2, "%-17s bug '%s' caught on %d/%d sequences (min cos %.4f)" % (
        name, what, caught, len(cs), min(cs)))


def check_sensitivity():
    xl = port_xlmr.create_position_ids_from_input_ids
    sensitivity("xlmr-e5", "positions from 0", port_xlmr, "create_position_ids_from_input_ids",
                lambda ids, pad: torch.arange(len(ids)))
    sensitivity("xlmr-e5", "positions from pad (off by one)", port_xlmr, "create_position_ids_from_input_ids",
                lambda ids, pad: xl(ids, pad) - 1)
    sensitivity("ce-xlmr", "positions from 0", port_xlmr, "create_position_ids_from_input_ids",
                lambda ids, pad: torch.arange(len(ids)))
    emb = port_bert.bert_embeddings
    sensitivity("ce-bert", "token types ignored", port_bert, "bert_embeddings",
                lambda w, p, ids, tt, pos, cfg: emb(w, p, ids, torch.zeros_like(tt), pos, cfg))
    sensitivity("bert-e5small", "XLM-R positions (pad+1 ..) for a bert model", port_bert, "bert_embeddings",
                lambda w, p, ids, tt, pos, cfg: emb(w, p, ids, tt, pos + 2, cfg))
    rt = port_nomic.rotary_tables
    sensitivity("nomic-v15", "rotary base 10000 instead of 1000", port_nomic, "rotary_tables",
                lambda s, d, b: rt(s, d, 10000))
    sensitivity("nomic-half", "rotary over the whole head (fraction ignored)", port_nomic, "rotary_tables",
                lambda s, d, b: rt(s, 32, b))

    def interleaved(x, cos_, sin_):
        ro = cos_.shape[-1] * 2
        c = cos_.repeat_interleave(2, -1)[:, None, :]
        s_ = sin_.repeat_interleave(2, -1)[:, None, :]
        xr = x[..., :ro]
        rh = torch.stack((-xr[..., 1::2], xr[..., ::2]), dim=-1).flatten(-2)
        return torch.cat([xr * c + rh * s_, x[..., ro:]], dim=-1)

    sensitivity("nomic-v15", "interleaved rotary pairs", port_nomic, "apply_rotary", interleaved)
    sensitivity("nomic-v15", "fc11/fc12 swapped (silu on fc11)", port_nomic, "gated_mlp",
                lambda w, p, x, cfg: port_bert.linear(w, p + ".fc2", F.silu(port_bert.linear(w, p + ".fc11", x))
                                                      * port_bert.linear(w, p + ".fc12", x)))
    sl = port_jina.alibi_slopes
    sensitivity("jina-v2", "alibi slopes as if 6 were a power of two", port_jina, "alibi_slopes",
                lambda n: [2 ** (-8.0 * (i + 1) / n) for i in range(n)])
    sensitivity("jina-v2", "alibi slopes in sorted order", port_jina, "alibi_slopes", lambda n: sorted(sl(n), reverse=True))

    def glu_swapped(w, p, x, cfg):
        inter = cfg["intermediate_size"]
        h = port_bert.linear(w, p + ".gated_layers", x)
        h = h[:, :inter] * F.gelu(h[:, inter:])
        return port_bert.layer_norm(w, p + ".layernorm", port_bert.linear(w, p + ".wo", h) + x, cfg["layer_norm_eps"])

    sensitivity("jina-v2", "GeGLU halves swapped", port_jina, "glu_mlp", glu_swapped)

    lin = port_bert.linear

    def up_gated_swapped(w, name, x):
        y = lin(w, name, x)
        if name.endswith(".mlp.up_gated_layer"):
            half = y.shape[-1] // 2
            y = torch.cat([y[:, half:], y[:, :half]], dim=-1)
        return y

    sensitivity("jina-v2-code", "GELU on the first half of up_gated_layer", port_jina, "linear", up_gated_swapped)
    ln = port_bert.layer_norm
    sensitivity("jina-v2-code", "layer_norm_q/k skipped", port_jina, "layer_norm",
                lambda w, name, x, eps: x if name.endswith(("layer_norm_q", "layer_norm_k")) else ln(w, name, x, eps))
    sensitivity("jina-v2-code", "layer_norm_1 skipped", port_jina, "layer_norm",
                lambda w, name, x, eps: x if name.endswith("layer_norm_1") else ln(w, name, x, eps))

    def mb_mlp_swapped(w, p, x, cfg):
        gate, inp = port_bert.linear(w, p + ".Wi", x).chunk(2, dim=-1)
        return port_bert.linear(w, p + ".Wo", F.gelu(inp) * gate)

    for name in ("modernbert-gte", "modernbert-embed"):
        sensitivity(name, "Wi chunk order swapped", port_modernbert, "mlp", mb_mlp_swapped)
        att = port_modernbert.attention
        sensitivity(name, "no sliding window (all layers global)", port_modernbert, "attention",
                    lambda w, p, x, i, cfg: att(w, p, x, i, dict(cfg, local_attention=10 ** 6)))
        sensitivity(name, "window |i-j| < local/2 (off by one)", port_modernbert, "attention",
                    lambda w, p, x, i, cfg: att(w, p, x, i, dict(cfg, local_attention=cfg["local_attention"] - 2)))
        sensitivity(name, "local layers use the global rope theta", port_modernbert, "attention",
                    lambda w, p, x, i, cfg: att(w, p, x, i, dict(cfg, local_rope_theta=cfg["global_rope_theta"])))


# ---------------------------------------------------------------- Qwen2 / Qwen3 decoders

def indep_qwen(w, cfg, ids, prefix, qk_norm, causal):
    """An independent Qwen2/Qwen3 forward in float64: RMSNorm from its formula,
    rotary as a complex rotation of the pairs (j, j + dh/2), GQA by indexing
    kv head h // group for query head h, and attention as a per-query loop over
    the keys it may see (0..i when causal, all otherwise)."""
    d = {k: v.double() for k, v in w.items()}
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = cfg.get("head_dim") or cfg["hidden_size"] // nh
    eps, theta, group = cfg["rms_norm_eps"], float(cfg["rope_theta"]), nh // nkv

    def norm(x, wt):
        return wt * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)

    def lin(name, x):
        y = x @ d[name + ".weight"].T
        return y + d[name + ".bias"] if name + ".bias" in d else y

    def rot(x, pos):  # x: (heads, dh) at position pos
        half = dh // 2
        z = torch.complex(x[:, :half], x[:, half:])
        ang = torch.tensor([pos * theta ** (-2.0 * j / dh) for j in range(half)], dtype=torch.float64)
        z = z * torch.polar(torch.ones_like(ang), ang)
        return torch.cat([z.real, z.imag], dim=-1)

    n = len(ids)
    x = d[prefix + "embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg["num_hidden_layers"]):
        p = "%slayers.%d." % (prefix, i)
        a = norm(x, d[p + "input_layernorm.weight"])
        q = lin(p + "self_attn.q_proj", a).view(n, nh, dh)
        k = lin(p + "self_attn.k_proj", a).view(n, nkv, dh)
        v = lin(p + "self_attn.v_proj", a).view(n, nkv, dh)
        if qk_norm:
            q, k = norm(q, d[p + "self_attn.q_norm.weight"]), norm(k, d[p + "self_attn.k_norm.weight"])
        q = torch.stack([rot(q[t], t) for t in range(n)])
        k = torch.stack([rot(k[t], t) for t in range(n)])
        ctx = torch.zeros(n, nh, dh, dtype=torch.float64)
        for h in range(nh):
            kv = h // group
            for t in range(n):
                m = t + 1 if causal else n
                sc = (k[:m, kv] @ q[t, h]) / math.sqrt(dh)
                ctx[t, h] = torch.softmax(sc, dim=0) @ v[:m, kv]
        x = x + lin(p + "self_attn.o_proj", ctx.reshape(n, nh * dh))
        b = norm(x, d[p + "post_attention_layernorm.weight"])
        g = lin(p + "mlp.gate_proj", b)
        x = x + lin(p + "mlp.down_proj", g * torch.sigmoid(g) * lin(p + "mlp.up_proj", b))
    return norm(x, d[prefix + "norm.weight"])


QWEN_MODELS = (("qwen3-emb", "", True, True, "golden-torch.json"),
               ("qwen3-causallm", "model.", True, True, "golden-torch.json"),
               ("qwen2-gte", "model.", False, False, "golden-torch.json"),
               ("qwen2-gte", "model.", False, True, "golden-torch-causal.json"),
               ("qwen2-coder", "model.", False, True, "golden-torch.json"))


def check_qwen_independent():
    for name, prefix, qk_norm, causal, gname in QWEN_MODELS:
        s, w, _ = load(name)
        g = json.load(open(os.path.join(M.DEFAULT_OUT, s.name, gname)))
        worst = 1.0
        with torch.no_grad():
            for k, e in enumerate(g["sequences"]):
                if len(e["ids"]) > 80 and k % 2:  # the float64 loop is slow: every other long one
                    continue
                h = indep_qwen(w, s.cfg, e["ids"], prefix, qk_norm, causal)
                worst = min(worst, cos(h[-1], e["pooled"]))
                for row, want in zip(h, e.get("tokens", [])):
                    worst = min(worst, cos(row, want))
        check(worst > 0.999999, "%-17s %s == float64 per-query loop, complex rotary, GQA by index (min cos %.9f)"
              % (name, gname, worst))


def check_qwen_sensitivity():
    att, rope, lin = port_qwen.attention, port_qwen.rope, port_qwen._lin
    for name in ("qwen3-emb", "qwen2-coder"):
        sensitivity(name, "no causal mask", port_qwen, "attention",
                    lambda w, p, x, cfg, qk, causal: att(w, p, x, cfg, qk, False))
        sensitivity(name, "rope theta 10000 instead of 1e6", port_qwen, "rope", lambda s, dh, th: rope(s, dh, 10000.0))
        sensitivity(name, "mean pooling instead of the last token", C, "pool", lambda h, mode: h.mean(dim=0))
        sensitivity(name, "first token pooled", C, "pool", lambda h, mode: h[0])
        sensitivity(name, "rotary on interleaved pairs", port_qwen, "rotate_half",
                    lambda x: torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2))
        sensitivity(name, "gate/up swapped (silu on up)", port_qwen, "mlp",
                    lambda w, p, x: lin(w, p + ".down_proj", F.silu(lin(w, p + ".up_proj", x)) * lin(w, p + ".gate_proj", x)))
    sensitivity("qwen2-gte", "causal mask (gte-Qwen2's config says is_causal false)", port_qwen, "attention",
                lambda w, p, x, cfg, qk, causal: att(w, p, x, cfg, qk, True))
    for name in ("qwen3-emb", "qwen2-gte"):
        sensitivity(name, "GQA kv heads tiled (h % kv) instead of repeated (h // group)", port_qwen, "repeat_kv",
                    lambda x, n: x.repeat(n, 1, 1))
    sensitivity("qwen3-emb", "q_norm/k_norm skipped", port_qwen, "attention",
                lambda w, p, x, cfg, qk, causal: att(w, p, x, cfg, False, causal))
    for name in ("qwen2-gte", "qwen2-coder"):
        sensitivity(name, "q/k/v biases dropped", port_qwen, "_lin",
                    lambda w, n, x: F.linear(x, w[n + ".weight"]) if n.endswith(("q_proj", "k_proj", "v_proj"))
                    else lin(w, n, x))


def main():
    torch.set_num_threads(1)
    for name in M.TINY:
        reproduce(name)
    check_bert_vs_nn()
    check_rotary_complex()
    check_alibi()
    check_modernbert_window_loop()
    check_sensitivity()
    check_qwen_independent()
    check_qwen_sensitivity()
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
