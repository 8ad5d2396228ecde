#!/usr/bin/python3
"""Writes small random-weight checkpoints laid out exactly like real embedding
models (config.json keys, tensor names and prefixes, sentence-transformers
files, a WordPiece vocab.txt the engine can open) and, from the PyTorch ports
beside this file, their golden outputs.

  /usr/bin/python3 tests/oracle/arch/make_models.py [--out tests/golden/arch] [NAME...]
      every tiny model (or the NAMEs), each into OUT/NAME with golden-torch.json
  /usr/bin/python3 tests/oracle/arch/make_models.py --golden-only [NAME...]
      recompute golden-torch.json from the committed model.safetensors
  /usr/bin/python3 tests/oracle/arch/make_models.py --real-size REAL OUTDIR
      a random model of the real size (for benchmarks; not committed), REAL one of
      the names --list prints

Weights are seeded (torch.Generator), so a rerun writes the same bytes. The
ports read the weights back from the written model.safetensors (F16 models are
upcast to F32 exactly), so the golden outputs are those of the stored weights.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import port_bert  # noqa: E402
import port_jina  # noqa: E402
import port_modernbert  # noqa: E402
import port_nomic  # noqa: E402
import port_qwen  # noqa: E402
import port_xlmr  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "..", "golden", "arch"))


# ---------------------------------------------------------------- tensors

def ln_pair(r, t, name, n, bias=True):
    t[name + ".weight"] = r.ln_w(n)
    if bias:
        t[name + ".bias"] = r.bias(n)


def lin(r, t, name, out_f, in_f, bias=True, std=None):
    t[name + ".weight"] = r.mat(out_f, in_f, std)
    if bias:
        t[name + ".bias"] = r.bias(out_f)


def bert_tensors(r, cfg, p, pooler=True, position_ids=False, glu=False):
    """BertModel / XLMRobertaModel / JinaBertModel layout under prefix p."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    t = {}
    t[p + "embeddings.word_embeddings.weight"] = r.emb(V, H)
    if cfg.get("position_embedding_type", "absolute") != "alibi":
        t[p + "embeddings.position_embeddings.weight"] = r.emb(cfg["max_position_embeddings"], H) * 0.5
    t[p + "embeddings.token_type_embeddings.weight"] = r.emb(cfg["type_vocab_size"], H) * 0.5
    ln_pair(r, t, p + "embeddings.LayerNorm", H)
    if position_ids:  # a persistent buffer in checkpoints saved by transformers < 4.31
        t[p + "embeddings.position_ids"] = torch.arange(cfg["max_position_embeddings"]).unsqueeze(0)
    for i in range(cfg["num_hidden_layers"]):
        q = "%sencoder.layer.%d." % (p, i)
        for m in ("query", "key", "value"):
            lin(r, t, q + "attention.self." + m, H, H)
        lin(r, t, q + "attention.output.dense", H, H)
        ln_pair(r, t, q + "attention.output.LayerNorm", H)
        if glu:
            lin(r, t, q + "mlp.gated_layers", 2 * I, H, bias=False)
            lin(r, t, q + "mlp.wo", H, I)
            ln_pair(r, t, q + "mlp.layernorm", H)
        else:
            lin(r, t, q + "intermediate.dense", I, H)
            lin(r, t, q + "output.dense", H, I)
            ln_pair(r, t, q + "output.LayerNorm", H)
    if pooler:
        lin(r, t, p + "pooler.dense", H, H)
    return t


def bert_mlm_heads(r, cfg, t, nsp):
    """BertForPreTraining extras (cls.predictions.decoder.weight is tied to the
    word embeddings and not stored)."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    t["cls.predictions.bias"] = r.bias(V)
    lin(r, t, "cls.predictions.transform.dense", H, H)
    ln_pair(r, t, "cls.predictions.transform.LayerNorm", H)
    if nsp:
        lin(r, t, "cls.seq_relationship", 2, H)


def nomic_tensors(r, cfg):
    H, V = cfg["n_embd"], cfg["vocab_size"]
    I = (cfg["n_inner"] + 255) // 256 * 256  # NomciBertGatedMLP rounds to a multiple of 256
    t = {"embeddings.word_embeddings.weight": r.emb(V, H),
         "embeddings.token_type_embeddings.weight": r.emb(cfg["type_vocab_size"], H) * 0.5}
    ln_pair(r, t, "emb_ln", H)
    for i in range(cfg["n_layer"]):
        q = "encoder.layers.%d." % i
        lin(r, t, q + "attn.Wqkv", 3 * H, H, bias=cfg["qkv_proj_bias"])
        lin(r, t, q + "attn.out_proj", H, H, bias=cfg["qkv_proj_bias"])
        lin(r, t, q + "mlp.fc11", I, H, bias=cfg["mlp_fc1_bias"])
        lin(r, t, q + "mlp.fc12", I, H, bias=cfg["mlp_fc1_bias"])
        lin(r, t, q + "mlp.fc2", H, I, bias=cfg["mlp_fc2_bias"])
        ln_pair(r, t, q + "norm1", H)
        ln_pair(r, t, q + "norm2", H)
    return t


def modernbert_tensors(r, cfg, p, mlm_head):
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nb = cfg["norm_bias"]
    ab, mb = cfg["attention_bias"], cfg["mlp_bias"]
    t = {p + "embeddings.tok_embeddings.weight": r.emb(V, H)}
    ln_pair(r, t, p + "embeddings.norm", H, nb)
    for i in range(cfg["num_hidden_layers"]):
        q = "%slayers.%d." % (p, i)
        if i != 0:  # layer 0's attn_norm is nn.Identity
            ln_pair(r, t, q + "attn_norm", H, nb)
        lin(r, t, q + "attn.Wqkv", 3 * H, H, bias=ab)
        lin(r, t, q + "attn.Wo", H, H, bias=ab)
        ln_pair(r, t, q + "mlp_norm", H, nb)
        lin(r, t, q + "mlp.Wi", 2 * I, H, bias=mb)
        lin(r, t, q + "mlp.Wo", H, I, bias=mb)
    ln_pair(r, t, p + "final_norm", H, nb)
    if mlm_head:  # ModernBertForMaskedLM: head.dense (classifier_bias), head.norm, decoder.bias (weight tied)
        lin(r, t, "head.dense", H, H, bias=cfg["classifier_bias"])
        ln_pair(r, t, "head.norm", H, nb)
        t["decoder.bias"] = r.bias(V)
    return t


# ---------------------------------------------------------------- configs (keys of the real config.json)

def bert_config(mirror, arch, H, L, heads, I, V, P, **extra):
    cfg = {
        "_name_or_path": mirror,
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": P,
        "model_type": "bert",
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.30.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": V,
    }
    cfg.update(extra)
    return cfg


def xlmr_config(mirror, arch, H, L, heads, I, V, P, **extra):
    cfg = {
        "_name_or_path": mirror,
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": P,
        "model_type": "xlm-roberta",
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "output_past": True,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.29.0.dev0",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": V,
    }
    cfg.update(extra)
    return cfg


def nomic_config(H, L, heads, inner, V, fraction=1.0, biases=False):
    return {
        "_name_or_path": "nomic-ai/nomic-bert-2048",
        "activation_function": "swiglu",
        "architectures": ["NomicBertModel"],
        "attn_pdrop": 0.0,
        "auto_map": {
            "AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
            "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel",
            "AutoModelForMaskedLM": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertForPreTraining",
        },
        "bos_token_id": None,
        "causal": False,
        "dense_seq_output": True,
        "embd_pdrop": 0.0,
        "eos_token_id": None,
        "fused_bias_fc": True,
        "fused_dropout_add_ln": True,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-12,
        "max_trained_positions": 2048,
        "mlp_fc1_bias": biases,
        "mlp_fc2_bias": biases,
        "model_type": "nomic_bert",
        "n_embd": H,
        "n_head": heads,
        "n_inner": inner,
        "n_layer": L,
        "n_positions": 8192,
        "pad_vocab_size_multiple": 64,
        "parallel_block": False,
        "parallel_block_tied_norm": False,
        "prenorm": False,
        "qkv_proj_bias": biases,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0,
        "rotary_emb_base": 1000,
        "rotary_emb_fraction": fraction,
        "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None,
        "rotary_scaling_factor": None,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.0,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.34.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "use_flash_attn": True,
        "use_rms_norm": False,
        "use_xentropy": True,
        "vocab_size": V,
    }


def jina_config(H, L, heads, I, V):
    return {
        "_name_or_path": "jinaai/jina-bert-v2-small-en",
        "architectures": ["JinaBertForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "attn_implementation": "torch",
        "auto_map": {
            "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
            "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
            "AutoModelForMaskedLM": "jinaai/jina-bert-implementation--modeling_bert.JinaBertForMaskedLM",
            "AutoModelForSequenceClassification":
                "jinaai/jina-bert-implementation--modeling_bert.JinaBertForSequenceClassification",
        },
        "classifier_dropout": None,
        "emb_pooler": "mean",
        "feed_forward_type": "geglu",
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 8192,
        "model_max_length": 8192,
        "model_type": "bert",
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "pad_token_id": 0,
        "position_embedding_type": "alibi",
        "torch_dtype": "float16",
        "transformers_version": "4.26.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": V,
    }


def modernbert_config(arch, H, L, heads, I, V, local, every, cls_id, sep_id, pad_id, mask_id):
    return {
        "_name_or_path": "answerdotai/ModernBERT-base",
        "architectures": [arch],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": cls_id,
        "classifier_activation": "gelu",
        "classifier_bias": False,
        "classifier_dropout": 0.0,
        "classifier_pooling": "mean",
        "cls_token_id": cls_id,
        "decoder_bias": True,
        "deterministic_flash_attn": False,
        "embedding_dropout": 0.0,
        "eos_token_id": sep_id,
        "global_attn_every_n_layers": every,
        "global_rope_theta": 160000.0,
        "gradient_checkpointing": False,
        "hidden_activation": "gelu",
        "hidden_size": H,
        "initializer_cutoff_factor": 2.0,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-05,
        "local_attention": local,
        "local_rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "mlp_dropout": 0.0,
        "model_type": "modernbert",
        "norm_bias": False,
        "norm_eps": 1e-05,
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "reference_compile": True,
        "repad_logits_with_grad": False,
        "sep_token_id": sep_id,
        "sparse_pred_ignore_index": -100,
        "sparse_prediction": False,
        "torch_dtype": "float32",
        "transformers_version": "4.48.0",
        "vocab_size": V,
        "mask_token_id": mask_id,
    }


# ---------------------------------------------------------------- model specs

# the real ModernBERT tokenizer's special ids (its BPE vocabulary puts them at the end)
MODERNBERT_REAL_SPECIALS = {50280: "[UNK]", 50281: "[CLS]", 50282: "[SEP]", 50283: "[PAD]", 50284: "[MASK]"}

NOMIC_PROMPTS = {"query": "search_query: ", "document": "search_document: ",
                 "classification": "classification: ", "clustering": "clustering: "}


class Spec:
    """name: dir; mirror: the real model; kind: embed | rerank; cfg: config.json;
    tensors(r): dict; forward(w, ids, type_ids) -> hidden (embed) or logits (rerank)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def spec_bert_minilm(real=False):
    H, L, h, I, V, P = (384, 6, 12, 1536, 30522, 512) if real else (64, 3, 4, 128, 400, 128)
    cfg = bert_config("nreimers/MiniLM-L6-H384-uncased", "BertModel", H, L, h, I, V, P,
                      transformers_version="4.8.2")
    del cfg["classifier_dropout"], cfg["torch_dtype"]
    return Spec(name="bert-minilm", mirror="sentence-transformers/all-MiniLM-L6-v2", arch="BERT",
                kind="embed", cfg=cfg, pooling="mean", normalize=True, dtype=torch.float32,
                specials=C.BERT_SPECIALS, cls=2, sep=3, filler=(5, V), seed=101,
                tensors=lambda r: bert_tensors(r, cfg, "", pooler=True, position_ids=True),
                forward=lambda w, ids, tt: port_bert.bert_model(w, cfg, ids), source=port_bert.SOURCE,
                notes="no prefix, pooler.dense present, embeddings.position_ids (I64) persisted")


def spec_bert_bge(real=False):
    H, L, h, I, V, P = (384, 12, 12, 1536, 30522, 512) if real else (64, 2, 2, 128, 400, 128)
    cfg = bert_config("/root/.cache/torch/sentence_transformers/BAAI_bge-small-en/", "BertModel",
                      H, L, h, I, V, P, id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    del cfg["gradient_checkpointing"]
    return Spec(name="bert-bge", mirror="BAAI/bge-small-en-v1.5", arch="BERT", kind="embed", cfg=cfg,
                pooling="cls", normalize=True, dtype=torch.float32, specials=C.BERT_SPECIALS, cls=2, sep=3,
                filler=(5, V), seed=102,
                tensors=lambda r: bert_tensors(r, cfg, "", pooler=True, position_ids=True),
                forward=lambda w, ids, tt: port_bert.bert_model(w, cfg, ids), source=port_bert.SOURCE,
                notes="no prefix, dh 32, CLS pooling")


def spec_bert_prefix(real=False):
    H, L, h, I, V, P = (768, 12, 12, 3072, 30522, 512) if real else (64, 2, 1, 128, 400, 128)
    cfg = bert_config("google-bert/bert-base-uncased", "BertForMaskedLM", H, L, h, I, V, P,
                      transformers_version="4.6.0.dev0")
    del cfg["classifier_dropout"], cfg["torch_dtype"]

    def tensors(r):
        t = bert_tensors(r, cfg, "bert.", pooler=True)
        bert_mlm_heads(r, cfg, t, nsp=True)
        return t

    return Spec(name="bert-prefix", mirror="google-bert/bert-base-uncased (BertForPreTraining layout)",
                arch="BERT", kind="embed", cfg=cfg, pooling="mean", normalize=False, dtype=torch.float16,
                specials=C.BERT_SPECIALS, cls=2, sep=3, filler=(5, V), seed=103, tensors=tensors,
                forward=lambda w, ids, tt: port_bert.bert_model(w, cfg, ids, prefix="bert."),
                source=port_bert.SOURCE,
                notes="'bert.' prefix, cls.predictions.* and cls.seq_relationship.* heads, 1 head of dh 64, F16")


def spec_bert_e5small(real=False):
    """multilingual-e5-small is a BERT (Multilingual-MiniLM) with XLM-R's
    sentencepiece vocabulary: model_type bert, positions 0.., <s>=0 </s>=2."""
    H, L, h, I, V, P = (384, 12, 12, 1536, 250037, 512) if real else (64, 2, 4, 128, 400, 128)
    cfg = bert_config("microsoft/Multilingual-MiniLM-L12-H384", "BertModel", H, L, h, I, V, P,
                      tokenizer_class="XLMRobertaTokenizer", transformers_version="4.29.0.dev0")
    del cfg["gradient_checkpointing"]
    return Spec(name="bert-e5small", mirror="intfloat/multilingual-e5-small", arch="BERT (XLM-R vocabulary)",
                kind="embed", cfg=cfg, pooling="mean", normalize=True, dtype=torch.float32,
                specials=C.xlmr_specials(V), cls=0, sep=2, filler=(4, V - 1), seed=114,
                tensors=lambda r: bert_tensors(r, cfg, "", pooler=True, position_ids=True),
                forward=lambda w, ids, tt: port_bert.bert_model(w, cfg, ids), source=port_bert.SOURCE,
                notes="model_type bert with tokenizer_class XLMRobertaTokenizer: positions from 0 (not pad+1), "
                      "<s>=0 </s>=2, type_vocab_size 2")


def spec_nomic_v15(real=False):
    H, L, h, inner, V = (768, 12, 12, 3072, 30528) if real else (64, 2, 4, 256, 384)
    cfg = nomic_config(H, L, h, inner, V)
    return Spec(name="nomic-v15", mirror="nomic-ai/nomic-embed-text-v1.5", arch="NomicBERT", kind="embed",
                max_seq_length=8192,   # as the real one: golden-long.json reaches it
                cfg=cfg, pooling="mean", normalize=False, dtype=torch.float32, specials=C.BERT_SPECIALS,
                cls=2, sep=3, filler=(5, V), seed=104, tensors=lambda r: nomic_tensors(r, cfg),
                forward=lambda w, ids, tt: port_nomic.nomic_model(w, cfg, ids), source=port_nomic.SOURCE,
                prompts=NOMIC_PROMPTS,
                notes="rotary fraction 1.0 base 1000, SwiGLU fc11/fc12/fc2, no biases, no pooler tensors")


def spec_nomic_half(real=False):
    H, L, h, inner, V = (768, 12, 12, 3072, 30528) if real else (64, 2, 2, 256, 384)
    cfg = nomic_config(H, L, h, inner, V, fraction=0.5, biases=True)
    cfg["_name_or_path"] = "nomic-ai/CodeRankEmbed (variant: rotary_emb_fraction 0.5, biases on)"
    return Spec(name="nomic-half", mirror="nomic-ai/CodeRankEmbed layout, modified: rotary_emb_fraction 0.5, "
                "qkv_proj_bias/mlp_fc1_bias/mlp_fc2_bias true", arch="NomicBERT", kind="embed", cfg=cfg,
                pooling="cls", normalize=False, dtype=torch.float16, specials=C.BERT_SPECIALS, cls=2, sep=3,
                filler=(5, V), seed=105, tensors=lambda r: nomic_tensors(r, cfg),
                forward=lambda w, ids, tt: port_nomic.nomic_model(w, cfg, ids), source=port_nomic.SOURCE,
                notes="partial rotary (16 of dh 32), biases on every linear, CLS pooling, F16")


def spec_jina(real=False, base=False):
    if real:
        H, L, h, I, V = (768, 12, 12, 3072, 30528) if base else (512, 4, 8, 2048, 30528)
    else:
        H, L, h, I, V = 96, 2, 6, 128, 400
    cfg = jina_config(H, L, h, I, V)
    if base:
        cfg["_name_or_path"] = "jinaai/jina-bert-v2-base-en"
    return Spec(name="jina-v2", mirror="jinaai/jina-embeddings-v2-small-en" if not base else
                "jinaai/jina-embeddings-v2-base-en", arch="JinaBERT-v2", kind="embed", cfg=cfg, max_seq_length=8192,
                pooling="mean", normalize=False, dtype=torch.float16, specials=C.BERT_SPECIALS, cls=2, sep=3,
                filler=(5, V), seed=106, tensors=lambda r: bert_tensors(r, cfg, "", pooler=True, glu=True),
                forward=lambda w, ids, tt: port_jina.jina_model(w, cfg, ids), source=port_jina.SOURCE,
                notes="ALiBi with 6 heads (not a power of two), GeGLU mlp.gated_layers/wo/layernorm, "
                      "no position embeddings, pooler.dense present, F16 like the real checkpoint")


def jina_code_tensors(r, cfg):
    """jina-embeddings-v2-base-code: BERT names plus attention.self.layer_norm_q/k,
    layer_norm_1/2 and mlp.up_gated_layer (no bias) / mlp.down_layer."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    t = {"embeddings.word_embeddings.weight": r.emb(V, H),
         "embeddings.token_type_embeddings.weight": r.emb(cfg["type_vocab_size"], H) * 0.5}
    ln_pair(r, t, "embeddings.LayerNorm", H)
    for i in range(cfg["num_hidden_layers"]):
        q = "encoder.layer.%d." % i
        for m in ("query", "key", "value"):
            lin(r, t, q + "attention.self." + m, H, H)
        ln_pair(r, t, q + "attention.self.layer_norm_q", H)
        ln_pair(r, t, q + "attention.self.layer_norm_k", H)
        lin(r, t, q + "attention.output.dense", H, H)
        ln_pair(r, t, q + "attention.output.LayerNorm", H)
        ln_pair(r, t, q + "layer_norm_1", H)
        lin(r, t, q + "mlp.up_gated_layer", 2 * I, H, bias=False)
        lin(r, t, q + "mlp.down_layer", H, I)
        ln_pair(r, t, q + "layer_norm_2", H)
    lin(r, t, "pooler.dense", H, H)
    return t


def spec_jina_code(real=False):
    H, L, h, I, V = (768, 12, 12, 3072, 61056) if real else (64, 2, 4, 128, 400)
    cfg = jina_config(H, L, h, I, V)
    cfg["_name_or_path"] = "jinaai/jina-bert-v2-qk-post-norm"
    cfg["auto_map"] = {k: v.replace("jina-bert-implementation", "jina-bert-v2-qk-post-norm")
                       for k, v in cfg["auto_map"].items()}
    cfg["transformers_version"] = "4.32.0"
    return Spec(name="jina-v2-code", mirror="jinaai/jina-embeddings-v2-base-code", arch="JinaBERT-v2 qk-post-norm",
                kind="embed", cfg=cfg, pooling="mean", normalize=False, dtype=torch.float16,
                specials=C.BERT_SPECIALS, cls=2, sep=3, filler=(5, V), seed=115,
                tensors=lambda r: jina_code_tensors(r, cfg),
                forward=lambda w, ids, tt: port_jina.jina_code_model(w, cfg, ids), source=port_jina.SOURCE_CODE,
                notes="auto_map -> jina-bert-v2-qk-post-norm; layer_norm_q/k; layer_norm_1/2; up_gated_layer "
                      "(GELU on the second half); 4 heads (power of two); F16")


def spec_xlmr_e5(real=False):
    H, L, h, I, V, P = (768, 12, 12, 3072, 250002, 514) if real else (64, 3, 4, 128, 400, 130)
    cfg = xlmr_config("xlm-roberta-base", "XLMRobertaModel", H, L, h, I, V, P)
    return Spec(name="xlmr-e5", mirror="intfloat/multilingual-e5-base", arch="XLM-RoBERTa", kind="embed",
                cfg=cfg, pooling="mean", normalize=True, dtype=torch.float32, specials=C.xlmr_specials(V),
                cls=0, sep=2, filler=(4, V - 1), seed=107,
                tensors=lambda r: bert_tensors(r, cfg, "", pooler=True, position_ids=True),
                forward=lambda w, ids, tt: port_xlmr.xlmr_model(w, cfg, ids), source=port_xlmr.SOURCE,
                notes="positions padding_idx+1.. (pad 1), type_vocab_size 1, pooler.dense present")


def spec_xlmr_bgem3(real=False):
    H, L, h, I, V, P = (1024, 24, 16, 4096, 250002, 8194) if real else (64, 2, 2, 128, 400, 130)
    cfg = xlmr_config("", "XLMRobertaModel", H, L, h, I, V, P, transformers_version="4.33.0")
    del cfg["output_past"]
    return Spec(name="xlmr-bgem3", mirror="BAAI/bge-m3 (dense)", arch="XLM-RoBERTa", kind="embed", cfg=cfg,
                pooling="cls", normalize=True, dtype=torch.float32, specials=C.xlmr_specials(V), cls=0, sep=2,
                filler=(4, V - 1), seed=108, tensors=lambda r: bert_tensors(r, cfg, "", pooler=True),
                forward=lambda w, ids, tt: port_xlmr.xlmr_model(w, cfg, ids), source=port_xlmr.SOURCE,
                notes="CLS pooling, dh 32, pooler.dense present")


def spec_modernbert_gte(real=False):
    if real:
        H, L, h, I, V, local, every = 768, 22, 12, 1152, 50368, 128, 3
        ids = dict(cls_id=50281, sep_id=50282, pad_id=50283, mask_id=50284)
    else:
        H, L, h, I, V, local, every = 64, 4, 2, 96, 400, 16, 3
        ids = dict(cls_id=2, sep_id=3, pad_id=0, mask_id=4)
    cfg = modernbert_config("ModernBertForMaskedLM", H, L, h, I, V, local, every, **ids)
    cfg["_name_or_path"] = "Alibaba-NLP/gte-modernbert-base"
    return Spec(name="modernbert-gte", mirror="Alibaba-NLP/gte-modernbert-base (ModernBertForMaskedLM layout)",
                max_seq_length=8192,
                arch="ModernBERT", kind="embed", cfg=cfg, pooling="cls", normalize=False, dtype=torch.float32,
                specials=MODERNBERT_REAL_SPECIALS if real else C.BERT_SPECIALS, cls=ids["cls_id"], sep=ids["sep_id"], filler=(5, V), seed=109,
                tensors=lambda r: modernbert_tensors(r, cfg, "model.", mlm_head=True),
                forward=lambda w, ids_, tt: port_modernbert.modernbert_model(w, cfg, ids_, prefix="model."),
                source=port_modernbert.SOURCE,
                notes="'model.' prefix + head.dense/head.norm/decoder.bias; layers 0 and 3 global, 1-2 local "
                      "(window |i-j| <= 8); CLS pooling")


def spec_modernbert_embed(real=False):
    if real:
        H, L, h, I, V, local, every = 768, 22, 12, 1152, 50368, 128, 3
        ids = dict(cls_id=50281, sep_id=50282, pad_id=50283, mask_id=50284)
    else:
        H, L, h, I, V, local, every = 64, 3, 4, 96, 400, 24, 2
        ids = dict(cls_id=2, sep_id=3, pad_id=0, mask_id=4)
    cfg = modernbert_config("ModernBertModel", H, L, h, I, V, local, every, **ids)
    cfg["transformers_version"] = "4.48.0.dev0"
    return Spec(name="modernbert-embed", mirror="nomic-ai/modernbert-embed-base", arch="ModernBERT", max_seq_length=8192,
                kind="embed", cfg=cfg, pooling="mean", normalize=True, dtype=torch.float32,
                specials=MODERNBERT_REAL_SPECIALS if real else C.BERT_SPECIALS, cls=ids["cls_id"], sep=ids["sep_id"], filler=(5, V), seed=110,
                tensors=lambda r: modernbert_tensors(r, cfg, "", mlm_head=False),
                forward=lambda w, ids_, tt: port_modernbert.modernbert_model(w, cfg, ids_),
                source=port_modernbert.SOURCE, prompts={"query": "search_query: ", "document": "search_document: "},
                notes="no prefix; layers 0 and 2 global, 1 local (window |i-j| <= 12); mean pooling")


def spec_ce_bert(real=False):
    H, L, h, I, V, P = (384, 6, 12, 1536, 30522, 512) if real else (64, 2, 4, 128, 400, 128)
    cfg = bert_config("cross-encoder/ms-marco-MiniLM-L-6-v2", "BertForSequenceClassification", H, L, h, I, V, P,
                      id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0},
                      sbert_ce_default_activation_function="torch.nn.modules.linear.Identity",
                      transformers_version="4.6.1")
    del cfg["classifier_dropout"], cfg["torch_dtype"]

    def tensors(r):
        t = bert_tensors(r, cfg, "bert.", pooler=True, position_ids=True)
        lin(r, t, "classifier", 1, H, std=0.3)
        return t

    return Spec(name="ce-bert", mirror="cross-encoder/ms-marco-MiniLM-L-6-v2", arch="BERT cross-encoder",
                kind="rerank", cfg=cfg, dtype=torch.float32, specials=C.BERT_SPECIALS, cls=2, sep=3, filler=(5, V),
                seed=111, tensors=tensors, double_sep=False,
                forward=lambda w, ids, tt: port_bert.bert_for_sequence_classification(w, cfg, ids, tt),
                source=port_bert.SOURCE,
                notes="bert.* + bert.pooler.dense + classifier (1 label); pairs with token types")


def spec_ce_xlmr(real=False, labels=1):
    H, L, h, I, V, P = (768, 12, 12, 3072, 250002, 514) if real else (64, 2, 4 if labels == 1 else 2, 128, 400, 130)
    extra = {"id2label": {str(i): "LABEL_%d" % i for i in range(labels)},
             "label2id": {"LABEL_%d" % i: i for i in range(labels)}}
    cfg = xlmr_config("BAAI/bge-reranker-base" if labels == 1 else "xlm-roberta-base (3-label classifier)",
                      "XLMRobertaForSequenceClassification", H, L, h, I, V, P, **extra)
    del cfg["output_past"]

    def tensors(r):
        t = bert_tensors(r, cfg, "roberta.", pooler=False, position_ids=labels == 1)
        lin(r, t, "classifier.dense", H, H)
        lin(r, t, "classifier.out_proj", labels, H, std=0.3)
        return t

    return Spec(name="ce-xlmr" if labels == 1 else "ce-xlmr3",
                mirror="BAAI/bge-reranker-base" if labels == 1 else
                "BAAI/bge-reranker-base layout with num_labels 3 (XLMRobertaForSequenceClassification)",
                arch="XLM-RoBERTa cross-encoder", kind="rerank", cfg=cfg, dtype=torch.float32,
                specials=C.xlmr_specials(V), cls=0, sep=2, filler=(4, V - 1), seed=112 + labels, tensors=tensors,
                double_sep=True, forward=lambda w, ids, tt: port_xlmr.xlmr_for_sequence_classification(w, cfg, ids),
                source=port_xlmr.SOURCE,
                notes="roberta.* (no pooler) + classifier.dense + classifier.out_proj (%d label%s); "
                      "pairs <s> A </s></s> B </s>, all type 0" % (labels, "" if labels == 1 else "s"))

# ---------------------------------------------------------------- Qwen2 / Qwen3 decoder embedders

# The tiny decoders' vocabulary: BERT specials at 0-4 (the engine's WordPiece
# loader needs [UNK] [CLS] [SEP]), fillers, and Qwen's three specials at the
# end in the real order (<|endoftext|> 151643, <|im_start|> 151644,
# <|im_end|> 151645 in the real vocabulary).
QWEN_EOT = 397
QWEN_SPECIALS = {**C.BERT_SPECIALS, 397: "<|endoftext|>", 398: "<|im_start|>", 399: "<|im_end|>"}
QWEN_REAL_SPECIALS = {**C.BERT_SPECIALS, 151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}
# lengths 1..200, three of them >= 128 (rotary at far positions, long causal masks)
QWEN_LENGTHS = [1, 2, 3, 5, 8, 13, 17, 33, 77, 128, 150, 200]

QWEN3_EMB_PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    "document": ""}
GTE_QWEN2_PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "}
JINA_CODE_PROMPTS = {
    "nl2code_query": "Find the most relevant code snippet given the following query:\n",
    "nl2code_document": "Candidate code snippet:\n",
    "code2code_query": "Find an equivalent code snippet given the following code snippet:\n",
    "code2code_document": "Candidate code snippet:\n",
    "code2nl_query": "Find the most relevant comment given the following code snippet:\n",
    "code2nl_document": "Candidate comment:\n",
    "code2completion_query": "Find the most relevant completion given the following start of code snippet:\n",
    "code2completion_document": "Candidate completion:\n",
    "qa_query": "Find the most relevant answer given the following question:\n",
    "qa_document": "Candidate answer:\n",
}


def decoder_sequences(seed, lo, hi, eot, lengths=QWEN_LENGTHS):
    """Decoder embedder inputs: filler... <|endoftext|> (the tokenizer appends
    it; last-token pooling reads its state); length 1 is <|endoftext|> alone."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(lo, hi, (n - 1,), generator=g).tolist() + [eot] for n in lengths]


def qwen_tensors(r, cfg, p, qk_norm, qkv_bias, lm_head):
    """Qwen2Model / Qwen3Model under prefix p ("" or "model."); lm_head.weight
    only for an untied *ForCausalLM checkpoint."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = cfg.get("head_dim") or H // nh
    t = {p + "embed_tokens.weight": r.emb(V, H)}
    for i in range(cfg["num_hidden_layers"]):
        q = "%slayers.%d." % (p, i)
        t[q + "input_layernorm.weight"] = r.ln_w(H)
        lin(r, t, q + "self_attn.q_proj", nh * dh, H, bias=qkv_bias)
        lin(r, t, q + "self_attn.k_proj", nkv * dh, H, bias=qkv_bias)
        lin(r, t, q + "self_attn.v_proj", nkv * dh, H, bias=qkv_bias)
        lin(r, t, q + "self_attn.o_proj", H, nh * dh, bias=False)
        if qk_norm:
            t[q + "self_attn.q_norm.weight"] = r.ln_w(dh)
            t[q + "self_attn.k_norm.weight"] = r.ln_w(dh)
        t[q + "post_attention_layernorm.weight"] = r.ln_w(H)
        lin(r, t, q + "mlp.gate_proj", I, H, bias=False)
        lin(r, t, q + "mlp.up_proj", I, H, bias=False)
        lin(r, t, q + "mlp.down_proj", H, I, bias=False)
    t[p + "norm.weight"] = r.ln_w(H)
    if lm_head:
        lin(r, t, "lm_head", V, H, bias=False)
    return t


def qwen3_config(H, L, heads, kv, dh, I, V, eot):
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "head_dim": dh,
        "hidden_act": "silu",
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "model_type": "qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.51.3",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": V,
    }


def qwen2_config(H, L, heads, kv, I, V, eot, **extra):
    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "hidden_act": "silu",
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "max_position_embeddings": 32768,
        "max_window_layers": 24,
        "model_type": "qwen2",
        "num_attention_heads": heads,
        "num_hidden_layers": L,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": V,
    }
    cfg.update(extra)
    return dict(sorted(cfg.items()))


def spec_qwen3(real=False, prefix=""):
    if real:
        H, L, h, kv, dh, I, V, eot = 1024, 28, 16, 8, 128, 3072, 151669, 151643
    else:
        H, L, h, kv, dh, I, V, eot = 64, 2, 4, 2, 32, 96, 400, QWEN_EOT
    cfg = qwen3_config(H, L, h, kv, dh, I, V, eot)
    name = "qwen3-emb" if prefix == "" else "qwen3-causallm"
    return Spec(name=name, mirror="Qwen/Qwen3-Embedding-0.6B" + ("" if prefix == "" else
                " (Qwen3ForCausalLM layout: model. prefix, tied lm_head not stored)"),
                arch="Qwen3", kind="embed", cfg=cfg, pooling="last", normalize=True,
                dtype=torch.bfloat16 if real else torch.float32,
                specials=QWEN_REAL_SPECIALS if real else QWEN_SPECIALS, cls=eot, sep=eot, filler=(5, QWEN_EOT),
                seed=120 if prefix == "" else 121, max_seq_length=32768 if real else 8192,
                seqs=lambda: decoder_sequences(120 if prefix == "" else 121, 5, QWEN_EOT, QWEN_EOT),
                tensors=lambda r: qwen_tensors(r, cfg, prefix, qk_norm=True, qkv_bias=False, lm_head=False),
                forward=lambda w, ids, tt: port_qwen.qwen_model(w, cfg, ids, prefix, qk_norm=True, causal=True),
                source=port_qwen.SOURCE_QWEN3, prompts=QWEN3_EMB_PROMPTS,
                notes="head_dim 32 with 4 heads (128 != hidden 64), GQA 4/2, q_norm/k_norm per head, causal, "
                      "last-token pooling, tied embeddings")


def spec_qwen2_gte(real=False):
    if real:
        H, L, h, kv, I, V, eot = 1536, 28, 12, 2, 8960, 151646, 151643
    else:
        H, L, h, kv, I, V, eot = 64, 2, 4, 2, 96, 400, QWEN_EOT
    cfg = qwen2_config(H, L, h, kv, I, V, eot, max_position_embeddings=131072, max_window_layers=21,
                       sliding_window=131072, tie_word_embeddings=False, transformers_version="4.41.2",
                       is_causal=False, auto_map={
                           "AutoModel": "Alibaba-NLP/gte-Qwen2-1.5B-instruct--modeling_qwen.Qwen2Model",
                           "AutoModelForCausalLM": "Alibaba-NLP/gte-Qwen2-1.5B-instruct--modeling_qwen.Qwen2ForCausalLM",
                           "AutoModelForSequenceClassification":
                               "Alibaba-NLP/gte-Qwen2-1.5B-instruct--modeling_qwen.Qwen2ForSequenceClassification"})
    del cfg["rope_scaling"]
    fwd = lambda causal: lambda w, ids, tt: port_qwen.qwen_model(w, cfg, ids, "model.", causal=causal)  # noqa: E731
    return Spec(name="qwen2-gte", mirror="Alibaba-NLP/gte-Qwen2-1.5B-instruct", arch="Qwen2 (bidirectional)",
                kind="embed", cfg=cfg, pooling="last", normalize=True,
                dtype=torch.bfloat16 if real else torch.float32,
                specials=QWEN_REAL_SPECIALS if real else QWEN_SPECIALS, cls=eot, sep=eot, filler=(5, QWEN_EOT),
                seed=122, max_seq_length=8192, seqs=lambda: decoder_sequences(122, 5, QWEN_EOT, QWEN_EOT),
                tensors=lambda r: qwen_tensors(r, cfg, "model.", qk_norm=False, qkv_bias=True, lm_head=True),
                forward=fwd(False), extra_goldens={"golden-torch-causal.json": fwd(True)},
                source=port_qwen.SOURCE_QWEN2, prompts=GTE_QWEN2_PROMPTS,
                notes="is_causal false in config.json: bidirectional golden; golden-torch-causal.json is the "
                      "causal variant; q/k/v biases; untied lm_head stored; GQA 4/2")


def spec_qwen2_coder(real=False):
    if real:
        H, L, h, kv, I, V, eot = 896, 24, 14, 2, 4864, 151936, 151643
    else:
        H, L, h, kv, I, V, eot = 112, 2, 7, 1, 64, 400, QWEN_EOT
    cfg = qwen2_config(H, L, h, kv, I, V, eot)
    return Spec(name="qwen2-coder", mirror="jinaai/jina-code-embeddings-0.5b", arch="Qwen2", kind="embed",
                cfg=cfg, pooling="last", normalize=True, dtype=torch.bfloat16 if real else torch.float32,
                specials=QWEN_REAL_SPECIALS if real else QWEN_SPECIALS, cls=eot, sep=eot, filler=(5, QWEN_EOT),
                seed=123, max_seq_length=32768, seqs=lambda: decoder_sequences(123, 5, QWEN_EOT, QWEN_EOT),
                # std 0.12 for hidden 112 keeps std * sqrt(fan_in) near the hidden-64 models' (0.16 * 8):
                # with 0.16 its int8 token states fall to cos 0.96 in a simulation of the engine's int8
                # GEMMs as in cembed itself, below the low-precision bars meant for typical random weights
                std=0.12,
                tensors=lambda r: qwen_tensors(r, cfg, "model.", qk_norm=False, qkv_bias=True, lm_head=False),
                forward=lambda w, ids, tt: port_qwen.qwen_model(w, cfg, ids, "model."),
                source=port_qwen.SOURCE_QWEN2, prompts=JINA_CODE_PROMPTS,
                notes="7 query heads on 1 kv head (group 7 as the real 14/2), dh 16, q/k/v biases, causal, "
                      "tied embeddings, matrices N(0, 0.12)")


TINY = {
    "bert-minilm": spec_bert_minilm, "bert-bge": spec_bert_bge, "bert-prefix": spec_bert_prefix,
    "bert-e5small": spec_bert_e5small, "nomic-v15": spec_nomic_v15, "nomic-half": spec_nomic_half, "jina-v2": spec_jina, "jina-v2-code": spec_jina_code,
    "xlmr-e5": spec_xlmr_e5, "xlmr-bgem3": spec_xlmr_bgem3,
    "modernbert-gte": spec_modernbert_gte, "modernbert-embed": spec_modernbert_embed,
    "ce-bert": spec_ce_bert, "ce-xlmr": spec_ce_xlmr, "ce-xlmr3": lambda real=False: spec_ce_xlmr(real, 3),
    "qwen3-emb": spec_qwen3, "qwen3-causallm": lambda real=False: spec_qwen3(real, "model."),
    "qwen2-gte": spec_qwen2_gte, "qwen2-coder": spec_qwen2_coder,
}

REAL = {
    "all-MiniLM-L6-v2": lambda: spec_bert_minilm(True),
    "bge-small-en-v1.5": lambda: spec_bert_bge(True),
    "bert-base-uncased": lambda: spec_bert_prefix(True),
    "nomic-embed-text-v1.5": lambda: spec_nomic_v15(True),
    "jina-embeddings-v2-small-en": lambda: spec_jina(True),
    "jina-embeddings-v2-base-en": lambda: spec_jina(True, base=True),
    "jina-embeddings-v2-base-code": lambda: spec_jina_code(True),
    "multilingual-e5-small": lambda: spec_bert_e5small(True),
    "multilingual-e5-base": lambda: spec_xlmr_e5(True),
    "bge-m3": lambda: spec_xlmr_bgem3(True),
    "gte-modernbert-base": lambda: spec_modernbert_gte(True),
    "modernbert-embed-base": lambda: spec_modernbert_embed(True),
    "ms-marco-MiniLM-L-6-v2": lambda: spec_ce_bert(True),
    "bge-reranker-base": lambda: spec_ce_xlmr(True),
    "qwen3-embedding-0.6b": lambda: spec_qwen3(True),
    "qwen2-1.5b": lambda: spec_qwen2_gte(True),
    "jina-code-embeddings-0.5b": lambda: spec_qwen2_coder(True),
}


# ---------------------------------------------------------------- writing

def write_model(s, d, max_seq_length=128):
    os.makedirs(d, exist_ok=True)
    r = C.Rand(s.seed, std=getattr(s, "std", 0.16))
    tensors = s.tensors(r)
    tensors = {k: (v.to(s.dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    C.write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    C.write_json(os.path.join(d, "config.json"), s.cfg)
    C.write_vocab(os.path.join(d, "vocab.txt"), s.cfg["vocab_size"], s.specials)
    if s.kind == "embed":
        hidden = s.cfg.get("hidden_size", s.cfg.get("n_embd"))
        C.write_st_files(d, hidden, s.pooling, getattr(s, "max_seq_length", max_seq_length), s.normalize,
                         getattr(s, "prompts", None))
    return sum(t.numel() for t in tensors.values() if t.is_floating_point())


TOKEN_SEQS = (6, 10)  # which sequences also get every token's last hidden state (lengths 17 and 77;
#                       17 and 150 for the decoders)


def embed_goldens(s, w, forward):
    """Pooled vectors (and every token's state for TOKEN_SEQS) of the spec's
    sequences: s.seqs() where the spec has them (decoders), else [CLS] ... [SEP]."""
    seqs = []
    ids_list = s.seqs() if hasattr(s, "seqs") else C.make_sequences(s.seed, s.filler[0], s.filler[1], s.cls, s.sep)
    for k, ids in enumerate(ids_list):
        hidden = forward(w, ids, None)
        e = {"ids": ids, "type1_from": len(ids), "pooled": C.vec9(C.pool(hidden, s.pooling))}
        if k in TOKEN_SEQS:
            e["tokens"] = [C.vec9(row) for row in hidden]
        seqs.append(e)
    return seqs


def golden(s, d):
    w = C.read_safetensors(os.path.join(d, "model.safetensors"))
    seqs = []
    with torch.no_grad():
        if s.kind == "embed":
            seqs = embed_goldens(s, w, s.forward)
        else:
            for ids, t1 in C.make_pairs(s.seed, s.filler[0], s.filler[1], s.cls, s.sep, s.double_sep):
                tt = [0] * t1 + [1] * (len(ids) - t1)
                seqs.append({"ids": ids, "type1_from": t1, "logits": C.vec9(s.forward(w, ids, tt))})
    out = {"model": s.name, "mirrors": s.mirror, "architecture": s.arch, "source": s.source,
           "pooling": getattr(s, "pooling", None), "normalized": False, "sequences": seqs}
    with open(os.path.join(d, "golden-torch.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    for fname, fwd in getattr(s, "extra_goldens", {}).items():  # a variant of the same weights
        with torch.no_grad():
            extra = dict(out, variant=fname, sequences=embed_goldens(s, w, fwd))
        with open(os.path.join(d, fname), "w") as f:
            json.dump(extra, f, separators=(",", ":"))
            f.write("\n")
    return len(seqs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--golden-only", action="store_true")
    ap.add_argument("--real-size", nargs=2, metavar=("REAL", "OUTDIR"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.list:
        print("tiny:", " ".join(TINY))
        print("real-size:", " ".join(REAL))
        return 0
    if a.real_size:
        name, out = a.real_size
        if name not in REAL:
            sys.exit("unknown real model %r; one of: %s" % (name, ", ".join(REAL)))
        s = REAL[name]()
        n = write_model(s, out, max_seq_length=512)
        print("%s: %d parameters -> %s" % (name, n, out))
        return 0
    for name in a.names or list(TINY):
        s = TINY[name]()
        d = os.path.join(a.out, s.name)
        if not a.golden_only:
            n = write_model(s, d)
        else:
            n = -1
        g = golden(s, d)
        size = os.path.getsize(os.path.join(d, "model.safetensors"))
        print("%-18s %7d params %7d bytes  %2d sequences  %s" % (s.name, n, size, g, s.mirror))
    return 0


if __name__ == "__main__":
    sys.exit(main())
