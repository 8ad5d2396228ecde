"""PyTorch port of ModernBERT (ModernBertModel; gte-modernbert-base,
modernbert-embed-base), the eager/sdpa path (not flash-attn/unpadded),
eval mode, fp32, one unpadded sequence.

Follows: huggingface/transformers src/transformers/models/modernbert/modeling_modernbert.py
at commit 000c33fdfde12e1ffafbfcdb3c926df5727a00b6:
- ModernBertEmbeddings: norm(tok_embeddings(ids)) (LayerNorm, bias per norm_bias).
- ModernBertEncoderLayer (pre-norm): h = x + attn(attn_norm(x)); out = h + mlp(mlp_norm(h));
  layer 0's attn_norm is nn.Identity (no tensor in the checkpoint).
- ModernBertAttention: Wqkv -> view(bs, seq, 3, heads, dh) (rows [q; k; v]);
  a layer is global when layer_id % global_attn_every_n_layers == 0, else local
  with a window: ModernBertModel._update_attention_mask masks |i - j| >
  local_attention // 2 (finfo.min added). Rotary (ModernBertRotaryEmbedding,
  default rope): inv_freq = 1 / theta^(arange(0, dh, 2) / dh) with theta =
  global_rope_theta for global layers and local_rope_theta for local ones
  (the config's layer_types / rope_parameters, built from those two keys);
  emb = cat(freqs, freqs); q*cos + rotate_half(q)*sin (halves, not interleaved).
  scores = QK^T * dh^-0.5 + mask, softmax, @V, Wo (bias per attention_bias).
- ModernBertMLP: input, gate = Wi(x).chunk(2) -> Wo(act(input) * gate): the
  activation (hidden_activation "gelu" = exact erf GELU) is on the FIRST half.
- ModernBertModel ends with final_norm.
"""
import math

import torch
import torch.nn.functional as F

from port_bert import act_fn, layer_norm, linear

SOURCE = ("huggingface/transformers src/transformers/models/modernbert/modeling_modernbert.py "
          "000c33fdfde12e1ffafbfcdb3c926df5727a00b6")


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(seq, dh, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    pos = torch.arange(seq).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def ln(w, name, x, cfg):
    return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"],
                        w[name + ".bias"] if cfg["norm_bias"] else None, cfg["norm_eps"])


def attention(w, p, x, layer_id, cfg):
    s, h = x.shape
    nh = cfg["num_attention_heads"]
    dh = h // nh
    qkv = linear(w, p + ".Wqkv", x).view(s, 3, nh, dh)
    q, k, v = (qkv[:, i].permute(1, 0, 2) for i in range(3))  # (heads, seq, dh)
    is_global = layer_id % cfg["global_attn_every_n_layers"] == 0
    theta = cfg["global_rope_theta"] if is_global else cfg["local_rope_theta"]
    cos, sin = rope(s, dh, theta)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    scores = torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5
    if not is_global:
        rows = torch.arange(s).unsqueeze(0)
        distance = torch.abs(rows - rows.T)
        window = distance <= cfg["local_attention"] // 2
        scores = scores.masked_fill(~window, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1)
    ctx = torch.matmul(probs, v).permute(1, 0, 2).reshape(s, h)
    return linear(w, p + ".Wo", ctx)


def mlp(w, p, x, cfg):
    inp, gate = linear(w, p + ".Wi", x).chunk(2, dim=-1)
    return linear(w, p + ".Wo", act_fn(cfg["hidden_activation"])(inp) * gate)


def modernbert_model(w, cfg, ids, prefix=""):
    """prefix: "" (ModernBertModel checkpoints) or "model." (ModernBertForMaskedLM)."""
    ids = torch.tensor(ids, dtype=torch.long)
    x = ln(w, prefix + "embeddings.norm", w[prefix + "embeddings.tok_embeddings.weight"][ids], cfg)
    for i in range(cfg["num_hidden_layers"]):
        p = "%slayers.%d" % (prefix, i)
        a_in = x if i == 0 else ln(w, p + ".attn_norm", x, cfg)
        x = x + attention(w, p + ".attn", a_in, i, cfg)
        x = x + mlp(w, p + ".mlp", ln(w, p + ".mlp_norm", x, cfg), cfg)
    return ln(w, prefix + "final_norm", x, cfg)
