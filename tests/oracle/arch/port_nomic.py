"""PyTorch port of NomicBERT (nomic_bert: nomic-embed-text-v1/v1.5, CodeRankEmbed),
forward path only, eval mode, fp32, one unpadded sequence.

Follows: nomic-ai/contrastors src/contrastors/models/huggingface/modeling_hf_nomic_bert.py
at commit 613ddfd37309e538cceadb05b1e6423e7b09f603 (the file published as the
models' remote code):
- NomicBertEmbeddings: word_embeddings + token_type_embeddings (type 0); no
  position embeddings when rotary_emb_fraction > 0; then NomicBertModel.emb_ln.
- NomicBertAttention: Wqkv (bias per qkv_proj_bias) -> "(three h d)" i.e. rows
  [q; k; v], each head-major; rotary on q and k over the first
  rotary_emb_dim = head_dim * rotary_emb_fraction dims of each head
  (NomicBertRotaryEmbedding, inv_freq = 1 / base^(arange(0, dim, 2) / dim),
  non-interleaved: rotate_half splits the rotary part into two halves,
  cos/sin repeated "(2 d)"); the rest of the head passes through; softmax(QK^T/sqrt(dh)); out_proj
  (bias per qkv_proj_bias).
- NomicBertBlock with prenorm false: h = norm1(attn(x) + x); out = norm2(mlp(h) + h).
- NomciBertGatedMLP (activation_function swiglu): fc2(fc11(x) * silu(fc12(x)))
  (the gate is fc12), fc11/fc12 bias per mlp_fc1_bias, fc2 per mlp_fc2_bias;
  hidden features rounded up to a multiple of 256.
- rotary_scaling_factor null (no dynamic NTK) is what the real configs use; not ported.
"""
import math

import torch
import torch.nn.functional as F

from port_bert import linear, layer_norm

SOURCE = ("nomic-ai/contrastors src/contrastors/models/huggingface/modeling_hf_nomic_bert.py "
          "613ddfd37309e538cceadb05b1e6423e7b09f603")


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin):
    """x: (seq, heads, dh); cos/sin: (seq, ro_dim/2)."""
    ro = cos.shape[-1] * 2
    c = torch.cat((cos, cos), dim=-1)[:, None, :]
    s = torch.cat((sin, sin), dim=-1)[:, None, :]
    return torch.cat([x[..., :ro] * c + rotate_half(x[..., :ro]) * s, x[..., ro:]], dim=-1)


def rotary_tables(seqlen, dim, base):
    inv_freq = 1.0 / (float(base) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    t = torch.arange(seqlen, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    return torch.cos(freqs), torch.sin(freqs)


def attention(w, p, x, cfg):
    s, h = x.shape
    nh = cfg["n_head"]
    dh = h // nh
    qkv = linear(w, p + ".Wqkv", x).view(s, 3, nh, dh)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    ro_dim = dh * cfg["rotary_emb_fraction"]
    if ro_dim > 0:
        assert not cfg.get("rotary_emb_interleaved"), "interleaved rotary is not ported"
        cos, sin = rotary_tables(s, ro_dim, cfg["rotary_emb_base"])
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    q, k, v = (t.permute(1, 0, 2) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
    ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(1, 0, 2).reshape(s, h)
    return linear(w, p + ".out_proj", ctx)


def gated_mlp(w, p, x, cfg):
    act = cfg["activation_function"]
    y = linear(w, p + ".fc11", x)
    gate = linear(w, p + ".fc12", x)
    if act == "swiglu":
        y = y * F.silu(gate)
    elif act == "geglu":
        y = y * F.gelu(gate)
    elif act == "glu":
        y = y * torch.sigmoid(gate)
    else:
        raise ValueError(act)
    return linear(w, p + ".fc2", y)


def nomic_model(w, cfg, ids, prefix=""):
    assert not cfg["prenorm"], "prenorm blocks are not ported (the embedding models use postnorm)"
    eps = cfg["layer_norm_epsilon"]
    ids = torch.tensor(ids, dtype=torch.long)
    x = w[prefix + "embeddings.word_embeddings.weight"][ids]
    if cfg["type_vocab_size"] > 0:
        x = x + w[prefix + "embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = layer_norm(w, prefix + "emb_ln", x, eps)
    for i in range(cfg["n_layer"]):
        p = "%sencoder.layers.%d" % (prefix, i)
        x = layer_norm(w, p + ".norm1", attention(w, p + ".attn", x, cfg) + x, eps)
        x = layer_norm(w, p + ".norm2", gated_mlp(w, p + ".mlp", x, cfg) + x, eps)
    return x
