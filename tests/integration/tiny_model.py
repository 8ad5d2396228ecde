#!/usr/bin/env python3
"""Writes a tiny random BERT model folder (config.json, F32
model.safetensors, vocab.txt, modules.json, 1_Pooling) for integration
tests that need a second model of another size, as tests/unit/tiny_model.h
does for the unit tests.

usage: tiny_model.py DIR [HIDDEN]"""
import json
import os
import random
import struct
import sys


def write(d, hidden=32, layers=1, heads=2, inter=64, vocab=64, max_pos=64, seed=1):
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    rnd = random.Random(seed)
    H, I, V = hidden, inter, vocab
    shapes = [("embeddings.word_embeddings.weight", [V, H]), ("embeddings.position_embeddings.weight", [max_pos, H]),
              ("embeddings.token_type_embeddings.weight", [2, H]), ("embeddings.LayerNorm.weight", [H]),
              ("embeddings.LayerNorm.bias", [H])]
    for l in range(layers):
        p = f"encoder.layer.{l}."
        for n in ("query", "key", "value"):
            shapes += [(p + f"attention.self.{n}.weight", [H, H]), (p + f"attention.self.{n}.bias", [H])]
        shapes += [(p + "attention.output.dense.weight", [H, H]), (p + "attention.output.dense.bias", [H]),
                   (p + "attention.output.LayerNorm.weight", [H]), (p + "attention.output.LayerNorm.bias", [H]),
                   (p + "intermediate.dense.weight", [I, H]), (p + "intermediate.dense.bias", [I]),
                   (p + "output.dense.weight", [H, I]), (p + "output.dense.bias", [H]),
                   (p + "output.LayerNorm.weight", [H]), (p + "output.LayerNorm.bias", [H])]
    header, blobs, off = {}, [], 0
    for name, shape in shapes:
        cnt = 1
        for x in shape:
            cnt *= x
        gamma = name.endswith("LayerNorm.weight")
        vals = [(1.0 if gamma else 0.0) + (rnd.random() - 0.5) * 0.4 for _ in range(cnt)]
        blob = struct.pack(f"<{cnt}f", *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "vocab_size": V, "hidden_size": H, "num_hidden_layers": layers,
                   "num_attention_heads": heads, "intermediate_size": I, "max_position_embeddings": max_pos,
                   "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}, f)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "a", "b", "c"]
    words += [f"tok{i}" for i in range(len(words), V)]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(words[:V]) + "\n")
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}], f)
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}, f)


if __name__ == "__main__":
    write(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)
