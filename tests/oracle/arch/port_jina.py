"""PyTorch port of JinaBERT v2 (jina-embeddings-v2-small-en / -base-en: model_type
bert, position_embedding_type alibi, feed_forward_type geglu), forward path
only, eval mode, fp32, eager attention, one unpadded sequence.

No copy of Jina's own remote code (huggingface.co/jinaai/jina-bert-implementation
modeling_bert.py) is reachable from here (the `fetch` tool has no snapshot of
it). The port follows, for each part:
- Attention, ALiBi and the layer: huggingface/transformers
  src/transformers/models/jina_bert/modeling_jina_bert.py at commit
  ddbac918c333836f5ff42fe32427ef6d97c1000f (a JinaBERT port in a transformers
  branch): JinaBertEncoder.rebuild_alibi_tensor builds the symmetric bias
  -slope_h * |i - j| with the ALiBi slopes of the paper (power of two heads:
  start = 2^(-2^-(log2(n) - 3)), slope_i = start^(i+1); otherwise the closest
  power of two's slopes followed by every other slope of twice that many,
  _get_alibi_head_slopes(2 * closest)[0::2][: n - closest]);
  JinaBertSelfAttention: softmax(QK^T / sqrt(dh) + mask + alibi); BertSelfOutput
  (attention.output.dense, attention.output.LayerNorm(. + x)). The embeddings
  have no position_embeddings when position_embedding_type is alibi.
  That file is the qk-post-norm variant (layer_norm_q/k, up_gated_layer,
  layer_norm_1/2 = jina-embeddings-v2-base-code); those parts are NOT used here.
- The MLP of the v2 small/base checkpoints (mlp.gated_layers, mlp.wo,
  mlp.layernorm): Jina's JinaBertGLUMLP is MosaicBERT's BertGatedLinearUnitMLP
  (mosaicml/examples bert_layers.py; the same code is what Jina's file holds, as
  third-party ports of it show, e.g. vLLM tpu-inference's JinaBertGLUMLP and
  llama.cpp's conversion that splits gated_layers into gate = rows
  [0, intermediate) and up = rows [intermediate, 2*intermediate)):
      h = gated_layers(x)                       # no bias
      h = gelu(h[:, :I]) * h[:, I:]             # exact (erf) GELU on the FIRST half
      out = layernorm(wo(h) + x)                # residual and post-LN inside the MLP
So a layer is: a = LN_attn(dense(attn(x)) + x); out = LN_mlp(wo(geglu(a)) + a).
"""
import math

import torch
import torch.nn.functional as F

from port_bert import layer_norm, linear, self_attention

SOURCE = ("huggingface/transformers src/transformers/models/jina_bert/modeling_jina_bert.py "
          "ddbac918c333836f5ff42fe32427ef6d97c1000f (attention/ALiBi) + MosaicBERT "
          "BertGatedLinearUnitMLP (= Jina JinaBertGLUMLP); jinaai/jina-bert-implementation not reachable")


def alibi_slopes(n_heads):
    def pow2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return pow2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return pow2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def alibi_bias(n_heads, size):
    ctx = torch.arange(size)[:, None]
    mem = torch.arange(size)[None, :]
    rel = torch.abs(mem - ctx).unsqueeze(0).expand(n_heads, -1, -1)
    slopes = torch.tensor(alibi_slopes(n_heads), dtype=torch.float32) * -1
    return slopes[:, None, None] * rel


def glu_mlp(w, p, x, cfg):
    inter = cfg["intermediate_size"]
    h = linear(w, p + ".gated_layers", x)
    gated, non_gated = h[:, :inter], h[:, inter:]
    if cfg["feed_forward_type"] == "geglu":
        h = F.gelu(gated) * non_gated
    elif cfg["feed_forward_type"] == "reglu":
        h = F.relu(gated) * non_gated
    else:
        raise ValueError(cfg["feed_forward_type"])
    return layer_norm(w, p + ".layernorm", linear(w, p + ".wo", h) + x, cfg["layer_norm_eps"])


def jina_model(w, cfg, ids, prefix=""):
    assert cfg["position_embedding_type"] == "alibi"
    eps = cfg["layer_norm_eps"]
    nh = cfg["num_attention_heads"]
    ids = torch.tensor(ids, dtype=torch.long)
    x = w[prefix + "embeddings.word_embeddings.weight"][ids]
    x = x + w[prefix + "embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = layer_norm(w, prefix + "embeddings.LayerNorm", x, eps)
    bias = alibi_bias(nh, ids.shape[0])
    for i in range(cfg["num_hidden_layers"]):
        p = "%sencoder.layer.%d" % (prefix, i)
        ctx = self_attention(w, p + ".attention.self", x, nh, bias=bias)
        a = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", ctx) + x, eps)
        x = glu_mlp(w, p + ".mlp", a, cfg)
    return x
