"""PyTorch port of the Qwen2 / Qwen3 decoders (Qwen2Model / Qwen3Model, the
eager attention path), eval mode, fp32, one unpadded sequence, as the
decoder embedders (Qwen3-Embedding, gte-Qwen2-instruct, jina-code-embeddings)
run them: last hidden state after the final norm, last-token pooling.

Follows huggingface/transformers
  src/transformers/models/qwen3/modeling_qwen3.py at 000c33fdfde12e1ffafbfcdb3c926df5727a00b6
  src/transformers/models/qwen2/modeling_qwen2.py at 00d4b3d2142cb4ced2f51b90614b5d26bc045015
- RMSNorm (Qwen2RMSNorm / Qwen3RMSNorm): x in fp32, x * rsqrt(mean(x^2) + eps), times weight.
- Decoder layer (pre-norm): h = x + attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
- Attention: head_dim = config.head_dim (Qwen3: may differ from hidden/heads; Qwen2:
  hidden // heads); q_proj (heads*dh), k_proj/v_proj (kv_heads*dh), o_proj back to hidden.
  Qwen2: q/k/v biases, no o bias.  Qwen3: biases per attention_bias (false), and
  q_norm / k_norm = RMSNorm over head_dim applied per head after the head split and
  before rotary.  Rotary (default rope): inv_freq = 1 / theta^(arange(0, dh, 2, int64).float() / dh),
  positions 0.., emb = cat(freqs, freqs), x*cos + rotate_half(x)*sin (halves).
  GQA: repeat_kv expands each kv head to num_attention_heads / num_key_value_heads
  consecutive query heads (kv head j serves query heads j*g .. j*g+g-1).
  scores = q k^T * dh^-0.5 + causal mask (finfo.min above the diagonal), softmax in fp32, @ v.
- MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).
- Model: embed_tokens -> layers -> norm.  use_sliding_window is false in every model
  here, so no layer is a sliding one.
- causal=False gives the bidirectional variant (gte-Qwen2's config says
  "is_causal": false; see tests/golden/arch/README.md).
"""
import torch
import torch.nn.functional as F

SOURCE_QWEN3 = ("huggingface/transformers src/transformers/models/qwen3/modeling_qwen3.py "
                "000c33fdfde12e1ffafbfcdb3c926df5727a00b6")
SOURCE_QWEN2 = ("huggingface/transformers src/transformers/models/qwen2/modeling_qwen2.py "
                "00d4b3d2142cb4ced2f51b90614b5d26bc045015")


def rms_norm(x, weight, eps):
    xf = x.to(torch.float32)
    var = xf.pow(2).mean(-1, keepdim=True)
    return weight * (xf * torch.rsqrt(var + eps))


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


def repeat_kv(x, n_rep):
    """x: (kv_heads, seq, dh) -> (kv_heads * n_rep, seq, dh), as transformers' repeat_kv."""
    if n_rep == 1:
        return x
    kv, s, d = x.shape
    return x[:, None, :, :].expand(kv, n_rep, s, d).reshape(kv * n_rep, s, d)


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def _lin(w, name, x):
    b = w.get(name + ".bias")
    return F.linear(x, w[name + ".weight"], b)


def attention(w, p, x, cfg, qk_norm, causal):
    s = x.shape[0]
    nh, nkv, dh = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    q = _lin(w, p + ".q_proj", x).view(s, nh, dh)
    k = _lin(w, p + ".k_proj", x).view(s, nkv, dh)
    v = _lin(w, p + ".v_proj", x).view(s, nkv, dh)
    if qk_norm:
        q = rms_norm(q, w[p + ".q_norm.weight"], eps)
        k = rms_norm(k, w[p + ".k_norm.weight"], eps)
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # (heads, seq, dh)
    cos, sin = rope(s, dh, float(cfg["rope_theta"]))
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = repeat_kv(k, nh // nkv)
    v = repeat_kv(v, nh // nkv)
    scores = torch.matmul(q, k.transpose(-1, -2)) * dh ** -0.5
    if causal:
        future = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
        scores = scores + torch.zeros(s, s).masked_fill(future, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    ctx = torch.matmul(probs, v).transpose(0, 1).reshape(s, nh * dh)
    return _lin(w, p + ".o_proj", ctx)


def mlp(w, p, x):
    return _lin(w, p + ".down_proj", F.silu(_lin(w, p + ".gate_proj", x)) * _lin(w, p + ".up_proj", x))


def qwen_model(w, cfg, ids, prefix="", qk_norm=False, causal=True):
    """Last hidden state (seq, hidden) after the final norm.  prefix: "" for
    Qwen2Model/Qwen3Model checkpoints, "model." for *ForCausalLM ones;
    qk_norm: Qwen3; causal: False for a bidirectional embedder."""
    ids = torch.tensor(ids, dtype=torch.long)
    eps = cfg["rms_norm_eps"]
    x = w[prefix + "embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = "%slayers.%d" % (prefix, i)
        x = x + attention(w, p + ".self_attn", rms_norm(x, w[p + ".input_layernorm.weight"], eps),
                          cfg, qk_norm, causal)
        x = x + mlp(w, p + ".mlp", rms_norm(x, w[p + ".post_attention_layernorm.weight"], eps))
    return rms_norm(x, w[prefix + "norm.weight"], eps)
