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
  layer_norm_1/2 = jina-embeddings-v2-base-code), ported whole in
  jina_code_model at the end of this file; jina_model uses only its
  attention and ALiBi. Hugging Face's text-embeddings-inference
  (backends/candle/src/models/jina_code.rs) reads the base-code checkpoint the
  same way (layer_norm_q/k over the whole hidden size, output.LayerNorm then
  layer_norm_1, activation on the second half of up_gated_layer, layer_norm_2).
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


# ---------------------------------------------------------------- jina-embeddings-v2-base-code

SOURCE_CODE = ("huggingface/transformers src/transformers/models/jina_bert/modeling_jina_bert.py "
               "ddbac918c333836f5ff42fe32427ef6d97c1000f (the qk-post-norm JinaBERT of jina-embeddings-v2-base-code)")


def code_layer(w, p, x, bias, cfg):
    """jina-bert-v2-qk-post-norm (jina-embeddings-v2-base-code), as that file's
    JinaBertSelfAttention / JinaBertAttention / JinaBertGLUMLP / JinaBertLayer:
      q = layer_norm_q(query(x)), k = layer_norm_k(key(x)) over the whole hidden
      size before splitting heads; softmax(QK^T/sqrt(dh) + alibi) @ value(x)
      a  = attention.output.LayerNorm(attention.output.dense(ctx) + x)   (BertSelfOutput)
      h  = layer_norm_1(x + a)
      m  = down_layer(up * gelu(gate)), [up | gate] = up_gated_layer(h): here the
           GELU is on the SECOND half (JinaBertGLUMLP of that file; llama.cpp's
           converter splits up_gated_layer the same way)
      out = layer_norm_2(h + m)"""
    eps = cfg["layer_norm_eps"]
    nh = cfg["num_attention_heads"]
    s, hd = x.shape
    dh = hd // nh
    sp = p + ".attention.self"

    def heads(t):
        return t.view(s, nh, dh).permute(1, 0, 2)

    q = heads(layer_norm(w, sp + ".layer_norm_q", linear(w, sp + ".query", x), eps))
    k = heads(layer_norm(w, sp + ".layer_norm_k", linear(w, sp + ".key", x), eps))
    v = heads(linear(w, sp + ".value", x))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
    probs = torch.softmax(scores + bias, dim=-1)
    ctx = torch.matmul(probs, v).permute(1, 0, 2).reshape(s, hd)
    a = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", ctx) + x, eps)
    h = layer_norm(w, p + ".layer_norm_1", x + a, eps)
    inter = cfg["intermediate_size"]
    u = linear(w, p + ".mlp.up_gated_layer", h)
    m = linear(w, p + ".mlp.down_layer", u[:, :inter] * F.gelu(u[:, inter:]))
    return layer_norm(w, p + ".layer_norm_2", h + m, eps)


def jina_code_model(w, cfg, ids, prefix=""):
    assert cfg["position_embedding_type"] == "alibi"
    eps = cfg["layer_norm_eps"]
    ids = torch.tensor(ids, dtype=torch.long)
    x = w[prefix + "embeddings.word_embeddings.weight"][ids]
    x = x + w[prefix + "embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = layer_norm(w, prefix + "embeddings.LayerNorm", x, eps)
    bias = alibi_bias(cfg["num_attention_heads"], ids.shape[0])
    for i in range(cfg["num_hidden_layers"]):
        x = code_layer(w, "%sencoder.layer.%d" % (prefix, i), x, bias, cfg)
    return x
