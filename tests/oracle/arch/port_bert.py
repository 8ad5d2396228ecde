"""PyTorch port of BERT (BertModel, BertForSequenceClassification), forward
path only, eval mode, fp32, eager attention, one unpadded sequence.

Follows: huggingface/transformers src/transformers/models/bert/modeling_bert.py
at commit 004ad5f50b627b59bf0d581c31bc0052b6cfd40b (BertEmbeddings,
BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput, BertPooler,
BertForSequenceClassification). The layer math has not changed in later
revisions (8ec58104181bfb34d824d89bccc009b4f6be6e0e reads the same).

Weights are read by their checkpoint names from a dict, so a missing or
misnamed tensor is a KeyError here.
"""
import math

import torch
import torch.nn.functional as F

SOURCE = ("huggingface/transformers src/transformers/models/bert/modeling_bert.py "
          "004ad5f50b627b59bf0d581c31bc0052b6cfd40b")


def act_fn(name):
    # transformers ACT2FN: "gelu" is the exact erf GELU, "gelu_new"/"gelu_pytorch_tanh" the tanh form
    if name == "gelu":
        return lambda x: F.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name in ("silu", "swish"):
        return F.silu
    raise ValueError(name)


def linear(w, name, x):
    b = w.get(name + ".bias")
    return F.linear(x, w[name + ".weight"], b)


def layer_norm(w, name, x, eps):
    return F.layer_norm(x, (x.shape[-1],), w[name + ".weight"], w.get(name + ".bias"), eps)


def self_attention(w, p, x, n_heads, bias=None):
    """BertSelfAttention: scores = QK^T / sqrt(dh) (+ additive bias), softmax, @V.
    x: (seq, hidden). bias: (heads, seq, seq) or None (no padding: mask is 0)."""
    s, h = x.shape
    dh = h // n_heads

    def heads(t):
        return t.view(s, n_heads, dh).permute(1, 0, 2)

    q = heads(linear(w, p + ".query", x))
    k = heads(linear(w, p + ".key", x))
    v = heads(linear(w, p + ".value", x))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    ctx = torch.matmul(probs, v).permute(1, 0, 2).reshape(s, h)
    return ctx


def bert_layer(w, p, x, cfg):
    eps = cfg["layer_norm_eps"]
    ctx = self_attention(w, p + ".attention.self", x, cfg["num_attention_heads"])
    a = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", ctx) + x, eps)
    i = act_fn(cfg["hidden_act"])(linear(w, p + ".intermediate.dense", a))
    return layer_norm(w, p + ".output.LayerNorm", linear(w, p + ".output.dense", i) + a, eps)


def bert_embeddings(w, p, ids, type_ids, position_ids, cfg):
    e = w[p + "embeddings.word_embeddings.weight"][ids]
    e = e + w[p + "embeddings.token_type_embeddings.weight"][type_ids]
    e = e + w[p + "embeddings.position_embeddings.weight"][position_ids]
    return layer_norm(w, p + "embeddings.LayerNorm", e, cfg["layer_norm_eps"])


def bert_model(w, cfg, ids, type_ids=None, prefix=""):
    """Returns last_hidden_state (seq, hidden). prefix: "" or "bert."."""
    ids = torch.tensor(ids, dtype=torch.long)
    if type_ids is None:
        type_ids = torch.zeros_like(ids)
    else:
        type_ids = torch.tensor(type_ids, dtype=torch.long)
    pos = torch.arange(ids.shape[0])  # BertEmbeddings: position_ids buffer [0, seq)
    x = bert_embeddings(w, prefix, ids, type_ids, pos, cfg)
    for i in range(cfg["num_hidden_layers"]):
        x = bert_layer(w, "%sencoder.layer.%d" % (prefix, i), x, cfg)
    return x


def bert_pooler(w, prefix, hidden):
    """BertPooler: tanh(dense(hidden[0]))."""
    return torch.tanh(linear(w, prefix + "pooler.dense", hidden[0]))


def bert_for_sequence_classification(w, cfg, ids, type_ids):
    """BertForSequenceClassification: classifier(dropout(pooler_output)) -> (num_labels,)."""
    hidden = bert_model(w, cfg, ids, type_ids, prefix="bert.")
    return linear(w, "classifier", bert_pooler(w, "bert.", hidden))
