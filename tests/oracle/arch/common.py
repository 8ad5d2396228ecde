"""Shared helpers for the architecture oracles: a safetensors reader/writer
(struct + json, no safetensors module), the sentence-transformers side files,
seeded random tensors, id sequences and the golden JSON format.

Everything here is plain Python + torch + numpy from Debian (python3-torch,
python3-numpy); no transformers, no PyPI.
"""
import json
import os
import struct

import numpy as np
import torch

_DT_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
_DT_NP = {"F32": np.float32, "F16": np.float16}


def write_safetensors(path, tensors, metadata=None):
    """tensors: ordered dict name -> torch tensor (F32/F16). Names are sorted as
    the safetensors library writes them; data offsets are packed in that order."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dt = _DT_NAME[t.dtype]
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)  # the library pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns dict name -> float32 torch tensor (F16 upcast exactly); integer
    tensors (a persisted embeddings.position_ids buffer) are skipped."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        if h["dtype"] not in _DT_NP:
            continue
        arr = np.frombuffer(data[a:b], dtype=_DT_NP[h["dtype"]]).reshape(h["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32))
    return out


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_vocab(path, vocab_size, specials):
    """specials: dict id -> token string; every other id is a filler 'tokN'.
    The C engine's vocab.txt loader needs [UNK], [CLS] and [SEP] to exist."""
    with open(path, "w") as f:
        for i in range(vocab_size):
            f.write(specials.get(i, "tok%d" % i) + "\n")


BERT_SPECIALS = {0: "[PAD]", 1: "[UNK]", 2: "[CLS]", 3: "[SEP]", 4: "[MASK]"}


def xlmr_specials(vocab_size):
    """XLM-R order <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask>=last, spelled the way
    the engine's WordPiece loader finds them ([CLS] is <s>, [SEP] is </s>)."""
    return {0: "[CLS]", 1: "[PAD]", 2: "[SEP]", 3: "[UNK]", vocab_size - 1: "[MASK]"}


def write_st_files(d, hidden, pooling, max_seq_length, normalize, prompts=None):
    """modules.json, 1_Pooling/config.json, sentence_bert_config.json (and
    config_sentence_transformers.json when the real model has prompts).
    pooling: "mean", "cls" or "last" (pooling_mode_lasttoken)."""
    mods = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    write_json(os.path.join(d, "modules.json"), mods)
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": pooling == "last",
        "include_prompt": True,
    })
    write_json(os.path.join(d, "sentence_bert_config.json"),
               {"max_seq_length": max_seq_length, "do_lower_case": False})
    if prompts is not None:
        write_json(os.path.join(d, "config_sentence_transformers.json"), {
            "__version__": {"sentence_transformers": "3.0.1", "transformers": "4.44.0", "pytorch": "2.4.0"},
            "prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"})


class Rand:
    """Seeded weights: matrices N(0, std), biases N(0, 0.05), LayerNorm
    weight 1 + N(0, 0.05) and bias N(0, 0.05), embeddings N(0, emb_std)."""

    def __init__(self, seed, std=0.16, emb_std=0.5):
        self.g = torch.Generator().manual_seed(seed)
        self.std = std
        self.emb_std = emb_std

    def normal(self, shape, std):
        return torch.randn(*shape, generator=self.g) * std

    def mat(self, out_f, in_f, std=None):
        return self.normal((out_f, in_f), std if std is not None else self.std)

    def bias(self, n):
        return self.normal((n,), 0.05)

    def ln_w(self, n):
        return 1.0 + self.normal((n,), 0.05)

    def emb(self, rows, cols):
        return self.normal((rows, cols), self.emb_std)


def f9(x):
    """9 significant digits, as a JSON number."""
    return float("%.9g" % float(x))


def vec9(t):
    return [f9(v) for v in t.reshape(-1).tolist()]


LENGTHS = [1, 2, 3, 5, 8, 13, 17, 24, 33, 50, 77, 120]


def make_sequences(seed, lo, hi, cls_id, sep_id, lengths=LENGTHS):
    """Single-sentence id sequences: [CLS] filler... [SEP]; length 1 is [CLS] alone."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        mid = torch.randint(lo, hi, (max(n - 2, 0),), generator=g).tolist()
        ids = [cls_id] + mid + ([sep_id] if n >= 2 else [])
        out.append(ids)
    return out


PAIR_LENGTHS = [(1, 1), (2, 3), (3, 9), (5, 20), (8, 8), (12, 30), (20, 40), (4, 70), (30, 60), (50, 60), (2, 100), (60, 50)]


def make_pairs(seed, lo, hi, cls_id, sep_id, double_sep):
    """Cross-encoder pairs. BERT: [CLS] A [SEP] B [SEP], token type 1 from B.
    XLM-R: <s> A </s></s> B </s>, all type 0. Returns (ids, type1_from)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for na, nb in PAIR_LENGTHS:
        a = torch.randint(lo, hi, (na,), generator=g).tolist()
        b = torch.randint(lo, hi, (nb,), generator=g).tolist()
        if double_sep:
            ids = [cls_id] + a + [sep_id, sep_id] + b + [sep_id]
            out.append((ids, len(ids)))
        else:
            ids = [cls_id] + a + [sep_id] + b + [sep_id]
            out.append((ids, na + 2))
    return out


def pool(hidden, mode):
    """hidden: (seq, dim) for one sequence (no padding)."""
    if mode == "cls":
        return hidden[0]
    if mode == "mean":
        return hidden.mean(dim=0)
    if mode == "last":  # sentence-transformers' lasttoken: the last token of an unpadded sequence
        return hidden[-1]
    raise ValueError(mode)
