#!/usr/bin/python3
"""Writes a Hugging Face encoder checkpoint directory as an F32 GGUF for llama.cpp.

This is the converter half of the llama.cpp oracle (see run_all.sh): it turns
the tiny random-weight checkpoints under tests/golden/arch/<name>/ into the
GGUF layout that llama.cpp's own convert_hf_to_gguf.py would produce, so that
llama.cpp computes an embedding from the very same weights as the PyTorch ports
and cembed.  It deliberately does not import convert_hf_to_gguf.py (that needs
torch/transformers/tokenizer files); it follows what that script does per
architecture and writes the file with llama.cpp's gguf-py (GGUFWriter and
TensorNameMap, from the llama.cpp checkout on PYTHONPATH).

Per architecture (as convert_hf_to_gguf.py at the pinned commit does):
  BertModel / BertForSequenceClassification  -> "bert"
  XLMRobertaModel / ...ForSequenceClassification / RobertaModel -> "bert",
      position_embeddings rows [0, pad_token_id] dropped (llama.cpp numbers
      positions from 0, HF from pad_token_id + 1), n_ctx shrunk to match
  NomicBertModel   -> "nomic-bert" (Wqkv kept fused, fc11 = up, fc12 = gate)
  JinaBertModel    -> "jina-bert-v2": where gguf-py maps mlp.gated_layers /
      mlp.up_gated_layer (newer llama.cpp) they stay fused and the graph runs
      GEGLU on them (activating the first half); older gguf-py: split as its
      converter did, gated_layers = [gate | up], up_gated_layer (v2-code) =
      [up | gate], the gate being the activated half
  ModernBertModel / ModernBertForMaskedLM -> "modern-bert" where gguf-py has
      it (Wi fused, sliding window = local_attention, pattern =
      global_attn_every_n_layers, rope base = global_rope_theta, swa base =
      local_rope_theta); absent in older llama.cpp: exit status 3
  Qwen2Model / Qwen2ForCausalLM (model_type qwen2) -> "qwen2", Qwen3Model /
      Qwen3ForCausalLM (qwen3) -> "qwen3" where gguf-py has it (absent in the
      2025-02 tree: exit status 3): names under "model." as the converter maps
      Qwen2Model's unprefixed ones, lm_head -> output when stored (tied
      embeddings: none, llama.cpp reuses token_embd), head_count_kv, rope freq
      base = rope_theta, layer_norm_rms_eps, key/value length = head_dim when
      the config has it, attention.causal = is_causal (default true),
      pooling_type LAST for pooling_mode_lasttoken
Sequence-classification heads become the RANK head llama.cpp has:
  cls = dense before tanh (BERT: pooler.dense, RoBERTa: classifier.dense),
  cls.output = the 1-label projection (BERT: classifier, RoBERTa: out_proj),
and pooling_type is written as 4 (RANK).  Where gguf-py has
classifier.output_labels (newer llama.cpp) all labels go into one GGUF.
Older llama.cpp's head has exactly one output (cls.output is [n_embd, 1]), so
a num_labels > 1 model is converted once per label there: LABEL picks that row
of the out projection, and the caller concatenates the per-label logits, each
computed by llama.cpp.  Otherwise the pooling type comes from
the sentence-transformers modules.json / Pooling config (mean or cls).

The vocabulary is synthetic: tokens are read from vocab.txt when present and
padded to vocab_size, tokenizer model "bert" (WPM).  The oracle feeds token
ids directly, so the token texts only have to load; the special ids are taken
from the vocab ([CLS] [SEP] [UNK] [PAD] [MASK] or <s> </s> <unk> <pad>).

usage: to_gguf.py MODEL_DIR OUT.gguf [LABEL]
"""
import json
import os
import struct
import sys

import numpy as np

import gguf

UNSUPPORTED = 3

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64,
             "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """Returns {name: float32 ndarray} from a .safetensors file (header + raw)."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] == "BF16":
            raw = np.frombuffer(blob, np.uint16, offset=base + info["data_offsets"][0],
                                count=(info["data_offsets"][1] - info["data_offsets"][0]) // 2)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(ST_DTYPES[info["dtype"]]).newbyteorder("<")
            beg, end = info["data_offsets"]
            arr = np.frombuffer(blob, dt, offset=base + beg, count=(end - beg) // dt.itemsize)
        out[name] = arr.reshape(info["shape"]).astype(np.float32) if arr.dtype.kind == "f" \
            else arr.reshape(info["shape"])
    return out


def hparam(cfg, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    if default is not None:
        return default
    raise KeyError(f"config.json has none of {keys}")


def pick_arch(cfg):
    archs = cfg.get("architectures") or []
    a = archs[0] if archs else ""
    mt = cfg.get("model_type", "")
    if a.startswith("Qwen3") or mt == "qwen3":
        return "qwen3"
    if a.startswith("Qwen2") or mt == "qwen2":
        return "qwen2"
    if a.startswith("XLMRoberta") or a.startswith("Roberta") or mt in ("xlm-roberta", "roberta"):
        return "xlmr"
    if a.startswith("NomicBert") or mt == "nomic_bert":
        return "nomic"
    if a.startswith("JinaBert") or "jina" in mt or cfg.get("position_embedding_type") == "alibi":
        return "jina"
    if a.startswith("ModernBert") or mt == "modernbert":
        return "modernbert"
    if a.startswith("Bert") or mt == "bert":
        return "bert"
    return None


def pooling_type(model_dir):
    """0 none / 1 mean / 2 cls from the sentence-transformers files, or None."""
    mpath = os.path.join(model_dir, "modules.json")
    if not os.path.isfile(mpath):
        return None
    with open(mpath) as f:
        modules = json.load(f)
    for m in modules:
        if m["type"] == "sentence_transformers.models.Pooling":
            with open(os.path.join(model_dir, m["path"], "config.json")) as f:
                p = json.load(f)
            if p.get("pooling_mode_mean_tokens"):
                return int(gguf.PoolingType.MEAN)
            if p.get("pooling_mode_cls_token"):
                return int(gguf.PoolingType.CLS)
            if p.get("pooling_mode_lasttoken"):
                return 3   # LLAMA_POOLING_TYPE_LAST (the 2025-02 gguf-py's enum lacks it)
            raise SystemExit(f"{model_dir}: only mean and cls pooling map onto llama.cpp")
    return None


def read_vocab(model_dir, n_vocab):
    toks = []
    vpath = os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(vpath):
        with open(vpath, encoding="utf-8") as f:
            toks = [line.rstrip("\n") for line in f][:n_vocab]
    seen = set()
    out = []
    for i in range(n_vocab):
        t = toks[i] if i < len(toks) and toks[i] else f"[unused{i}]"
        if t in seen:             # llama.cpp maps text -> id, keep texts unique
            t = f"[dup{i}]"
        seen.add(t)
        out.append(t)
    return out


def special_ids(tokens, cfg):
    idx = {t: i for i, t in enumerate(tokens)}

    def find(*names, default=None):
        for n in names:
            if n in idx:
                return idx[n]
        return default
    cls = find("[CLS]", "<s>", default=cfg.get("bos_token_id", 0))
    sep = find("[SEP]", "</s>", default=cfg.get("eos_token_id", 0))
    unk = find("[UNK]", "<unk>", default=0)
    pad = find("[PAD]", "<pad>", default=cfg.get("pad_token_id", 0) or 0)
    mask = find("[MASK]", "<mask>", default=unk)
    return cls, sep, unk, pad, mask


def wpm_text(tok):
    """convert_hf_to_gguf's 'phantom space' form of a WordPiece token."""
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    if tok.startswith("##"):
        return tok[2:] or tok
    return "\u2581" + tok


def rename_hf(name, kind):
    """Strips model prefixes and old gamma/beta names (convert_hf_to_gguf's rules)."""
    for pre in ("bert.", "roberta.", "model."):
        if name.startswith(pre):
            name = name[len(pre):]
            break
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    if name.endswith(".beta"):
        name = name[:-5] + ".bias"
    return name


def num_labels(cfg):
    if "num_labels" in cfg:
        return int(cfg["num_labels"])
    return len(cfg.get("id2label", {"0": 0}))


def head_tensors(t, kind, label):
    """Maps a sequence-classification head onto llama.cpp's cls / cls.output."""
    t = {rename_hf(k, kind): v for k, v in t.items()}
    out = {}
    if kind == "xlmr":
        pairs = (("classifier.dense", "cls"), ("classifier.out_proj", "cls.output"))
    else:
        pairs = (("pooler.dense", "cls"), ("classifier", "cls.output"))
    for src, dst in pairs:
        for suf in ("weight", "bias"):
            if f"{src}.{suf}" in t:
                out[f"{dst}.{suf}"] = t[f"{src}.{suf}"]
    if label is not None:
        out["cls.output.weight"] = out["cls.output.weight"][label:label + 1, :]
        out["cls.output.bias"] = out["cls.output.bias"][label:label + 1]
    return out


def has_output_labels():
    return hasattr(gguf.GGUFWriter, "add_classifier_output_labels")


def ffn_length(t, cfg):
    """The FFN width from the weights: nomic rounds n_inner up to a multiple of
    256 and Jina's gated_layers stack gate and up, so config keys can mislead."""
    for name, data in t.items():
        if name.endswith(("intermediate.dense.weight", "mlp.fc11.weight")):
            return data.shape[0]
        if name.endswith(("mlp.gated_layers.weight", "mlp.up_gated_layer.weight",
                          "mlp.Wi.weight")):
            return data.shape[0] // 2
    return hparam(cfg, "intermediate_size", "n_inner")


def convert_tensors(t, kind, cfg, n_layer, arch_enum, is_classifier, label):
    tmap = gguf.get_tensor_name_map(arch_enum, n_layer)
    out = {}
    if is_classifier:
        out.update(head_tensors(t, kind, label))
    n_ff = ffn_length(t, cfg)
    for name, data in t.items():
        name = rename_hf(name, kind)
        if name.startswith(("pooler.", "classifier", "cls.", "lm_head", "head.", "decoder.")) \
                or name.endswith("position_ids"):
            continue
        if kind == "xlmr" and name == "embeddings.position_embeddings.weight":
            pad = cfg.get("pad_token_id")
            if pad is not None:
                data = data[pad + 1:, :]
        if kind == "jina" and "gated_layer" in name and \
                tmap.get_name(name, try_suffixes=(".weight",)) is None:
            # older gguf-py: split.  gated_layers (v2 small/base) is [gate | up],
            # up_gated_layer (v2 base-code) is [up | gate]; the gate is activated
            lo, hi = data[:n_ff, :], data[n_ff:, :]
            gate, up = (hi, lo) if "up_gated_layer" in name else (lo, hi)
            base = name.replace("up_gated_layer", "gated_layers")
            out[tmap.get_name(base.replace("gated_layers", "gated_layers_w"),
                              try_suffixes=(".weight", ".bias"))] = gate
            out[tmap.get_name(base.replace("gated_layers", "gated_layers_v"),
                              try_suffixes=(".weight", ".bias"))] = up
            continue
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SystemExit(f"no llama.cpp name for tensor {name!r}")
        out[new] = data
    return out


def write_hparams(w, kind, arch, cfg, n_ctx, n_ff, pool):
    n_layer = hparam(cfg, "num_hidden_layers", "n_layer")
    n_embd = hparam(cfg, "hidden_size", "n_embd")
    n_head = hparam(cfg, "num_attention_heads", "n_head")
    w.add_block_count(n_layer)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_layer_norm_eps(hparam(cfg, "norm_eps", "layer_norm_eps", "layer_norm_epsilon")
                         if kind == "modernbert" else
                         hparam(cfg, "layer_norm_eps", "layer_norm_epsilon", default=1e-12))
    w.add_causal_attention(False)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    if pool is not None:
        w.add_uint32(gguf.Keys.LLM.POOLING_TYPE.format(arch=arch), pool)
    if kind == "nomic":
        w.add_rope_freq_base(float(hparam(cfg, "rotary_emb_base", default=10000.0)))
        frac = cfg.get("rotary_emb_fraction", 1.0)
        w.add_rope_dimension_count(int(frac * (n_embd // n_head)))
    if kind == "modernbert":
        w.add_rope_freq_base(float(hparam(cfg, "global_rope_theta", default=160000.0)))
        w.add_rope_freq_base_swa(float(hparam(cfg, "local_rope_theta", default=10000.0)))
        w.add_sliding_window(int(cfg["local_attention"]))
        w.add_sliding_window_pattern(int(hparam(cfg, "global_attn_every_n_layers", default=1)))
        w.add_rope_scaling_type(gguf.RopeScalingType.NONE)
        w.add_hidden_act(cfg.get("hidden_activation", "gelu"))
    return n_layer


def qwen_tensors(t, arch_enum, n_layer):
    """Qwen2/Qwen3: every name under "model." (Qwen2Model / Qwen3Model
    checkpoints store them bare), then gguf-py's map; lm_head -> output."""
    tmap = gguf.get_tensor_name_map(arch_enum, n_layer)
    out = {}
    for name, data in t.items():
        if not name.startswith(("model.", "lm_head.")):
            name = "model." + name
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SystemExit(f"no llama.cpp name for tensor {name!r}")
        out[new] = data
    return out


def write_qwen(w, cfg, t, arch_enum, pool):
    """The hparams convert_hf_to_gguf.py's TextModel / Qwen2Model write."""
    n_layer = cfg["num_hidden_layers"]
    w.add_block_count(n_layer)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg.get("num_key_value_heads") or cfg["num_attention_heads"])
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    if cfg.get("head_dim") is not None:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_causal_attention(bool(cfg.get("is_causal", True)))
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    if pool is not None:
        w.add_uint32(gguf.Keys.LLM.POOLING_TYPE.format(arch=w.arch), pool)
    return qwen_tensors(t, arch_enum, n_layer)


def check_nomic(cfg):
    bad = []
    if cfg.get("activation_function", "swiglu") != "swiglu":
        bad.append("activation_function != swiglu")
    for k in ("qkv_proj_bias", "mlp_fc1_bias", "mlp_fc2_bias", "prenorm", "causal",
              "rotary_emb_interleaved"):
        if cfg.get(k):
            bad.append(f"{k} = true")
    if cfg.get("rotary_emb_scale_base") is not None:
        bad.append("rotary_emb_scale_base set")
    if bad:
        print(f"nomic-bert variant llama.cpp's graph lacks: {', '.join(bad)}", file=sys.stderr)
        sys.exit(UNSUPPORTED)


def check_modernbert(cfg):
    bad = [k for k in ("norm_bias", "attention_bias", "mlp_bias") if cfg.get(k)]
    if bad:
        print(f"modern-bert in llama.cpp has no {', '.join(bad)} tensors", file=sys.stderr)
        sys.exit(UNSUPPORTED)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[-1])
    model_dir, out_path = sys.argv[1], sys.argv[2]
    label = int(sys.argv[3]) if len(sys.argv) == 4 else None
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    kind = pick_arch(cfg)
    if kind is None or (kind == "modernbert" and not hasattr(gguf.MODEL_ARCH, "MODERN_BERT")) \
            or (kind == "qwen3" and not hasattr(gguf.MODEL_ARCH, "QWEN3")):
        print(f"{model_dir}: architecture {cfg.get('architectures')} is not in this llama.cpp",
              file=sys.stderr)
        sys.exit(UNSUPPORTED)
    if kind == "modernbert":
        check_modernbert(cfg)
    if kind == "nomic":
        check_nomic(cfg)
    arch_enum = {"bert": gguf.MODEL_ARCH.BERT, "xlmr": gguf.MODEL_ARCH.BERT,
                 "nomic": gguf.MODEL_ARCH.NOMIC_BERT,
                 "jina": gguf.MODEL_ARCH.JINA_BERT_V2,
                 "modernbert": getattr(gguf.MODEL_ARCH, "MODERN_BERT", None),
                 "qwen2": gguf.MODEL_ARCH.QWEN2,
                 "qwen3": getattr(gguf.MODEL_ARCH, "QWEN3", None)}[kind]
    arch = gguf.MODEL_ARCH_NAMES[arch_enum]
    archs = cfg.get("architectures") or [""]
    is_classifier = archs[0].endswith("ForSequenceClassification")
    if is_classifier and kind not in ("bert", "xlmr"):
        print(f"{model_dir}: llama.cpp's RANK head is wired for BERT only", file=sys.stderr)
        sys.exit(UNSUPPORTED)
    if label is not None and has_output_labels():
        sys.exit("this gguf-py writes all labels into one GGUF: give no LABEL")
    if is_classifier and label is None and num_labels(cfg) != 1 and not has_output_labels():
        sys.exit(f"{model_dir}: num_labels {num_labels(cfg)}: give LABEL (one GGUF per label)")
    if is_classifier and not 0 <= (label or 0) < num_labels(cfg):
        sys.exit(f"{model_dir}: no label {label}")

    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    n_ctx = hparam(cfg, "max_position_embeddings", "n_positions", "n_ctx", default=512)
    if kind == "xlmr" and cfg.get("pad_token_id") is not None:
        n_ctx -= cfg["pad_token_id"] + 1
    pool = 4 if is_classifier else pooling_type(model_dir)
    if kind == "nomic" and pool is None:
        pool = int(gguf.PoolingType.MEAN)   # llama.cpp requires the key for nomic-bert

    w = gguf.GGUFWriter(out_path, arch)
    qwen = None
    if kind in ("qwen2", "qwen3"):
        qwen = write_qwen(w, cfg, t, arch_enum, pool)
    else:
        n_layer = write_hparams(w, kind, arch, cfg, n_ctx, ffn_length(t, cfg), pool)

    n_vocab = hparam(cfg, "vocab_size")
    tokens = read_vocab(model_dir, n_vocab)
    cls, sep, unk, pad, mask = special_ids(tokens, cfg)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([wpm_text(x) for x in tokens])
    ttypes = [int(gguf.TokenType.NORMAL)] * n_vocab
    for i in {cls, sep, pad, mask}:
        ttypes[i] = int(gguf.TokenType.CONTROL)
    ttypes[unk] = int(gguf.TokenType.UNKNOWN)
    w.add_token_types(ttypes)
    if kind not in ("modernbert", "qwen2", "qwen3"):
        w.add_token_type_count(cfg.get("type_vocab_size", 1))
    if is_classifier and has_output_labels():
        id2label = cfg.get("id2label") or {str(i): f"LABEL_{i}" for i in range(num_labels(cfg))}
        w.add_classifier_output_labels([id2label[str(i)] for i in range(num_labels(cfg))])
    w.add_bos_token_id(cls)
    w.add_sep_token_id(sep)
    w.add_unk_token_id(unk)
    w.add_pad_token_id(pad)
    w.add_mask_token_id(mask)

    tensors = qwen if qwen is not None else convert_tensors(t, kind, cfg, n_layer, arch_enum,
                                                            is_classifier, label)
    for name, data in sorted(tensors.items()):
        w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
