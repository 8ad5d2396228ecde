#!/usr/bin/env python3
"""Derives tokenizer.json variants from real ones, to reach the components
the shipped files do not use: ByteLevel with its own regex and prefix space,
RobertaProcessing, BertProcessing, pair templates with type ids, added-token
flags (lstrip, rstrip, single_word, normalized), normalizer sequences (NFKC,
NFD, Lowercase, StripAccents, Replace by regex, Strip), and the Digits,
Punctuation, Whitespace, Split(String) and Metaspace pre-tokenizers. Each
keeps the vocabulary and merges of its source, so ids stay meaningful.

usage: make_variants.py QWEN3.json LLAMA2.json OUTDIR   (writes OUTDIR/<name>.json)
"""
import json
import os
import random
import sys


def tok(d, content):
    return next(t for t in d["added_tokens"] if t["content"] == content)


def special(name, id_):
    return {name: {"id": name, "ids": [id_], "tokens": [name]}}


def main():
    qwen_path, llama2_path, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    base = json.load(open(qwen_path, encoding="utf-8"))
    ES, IS, IE = 151643, 151644, 151645

    d = json.loads(json.dumps(base))
    d["normalizer"] = None
    d["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    d["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|endoftext|>", ES], "cls": ["<|im_start|>", IS],
                           "trim_offsets": True, "add_prefix_space": True}
    tok(d, "<|im_end|>").update(lstrip=True, rstrip=True)
    tok(d, "<|object_ref_start|>").update(single_word=True)
    tok(d, "<think>").update(normalized=True, special=False)
    json.dump(d, open(f"{out}/roberta_like.json", "w", encoding="utf-8"), ensure_ascii=False)

    d = json.loads(json.dumps(base))
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Strip", "strip_left": True,
                                                                            "strip_right": True}]}
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    d["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                  {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}],
         "special_tokens": {**special("<|im_start|>", IS), **special("<|im_end|>", IE), **special("<|endoftext|>", ES)}}]}
    tok(d, "<think>").update(normalized=True, special=False, rstrip=True)
    json.dump(d, open(f"{out}/norm_seq.json", "w", encoding="utf-8"), ensure_ascii=False)

    d = json.loads(json.dumps(base))
    d["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Whitespace"}, {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
    d["post_processor"] = {"type": "BertProcessing", "sep": ["<|im_end|>", IE], "cls": ["<|im_start|>", IS]}
    json.dump(d, open(f"{out}/whitespace_bert.json", "w", encoding="utf-8"), ensure_ascii=False)

    d = json.load(open(llama2_path, encoding="utf-8"))
    d["normalizer"] = None
    d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    json.dump(d, open(f"{out}/metaspace_first.json", "w", encoding="utf-8"), ensure_ascii=False)
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}]}
    json.dump(d, open(f"{out}/metaspace_always.json", "w", encoding="utf-8"), ensure_ascii=False)

    # Unigram over llama2's SentencePiece pieces with made-up scores (no real
    # Unigram tokenizer.json ships on npm), XLM-R's shape: WhitespaceSplit +
    # Metaspace, <s> A </s></s> B </s>; then one with unk instead of byte
    # fallback, Strip + Replace normalizers and Metaspace "first" unsplit.
    d = json.load(open(llama2_path, encoding="utf-8"))
    rng = random.Random(7)
    pieces = []
    for k, i in sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1]):
        pieces.append([k, 0.0 if i < 3 else -(2.0 + (i ** 0.5) / 20.0 + rng.random() * 3.0)])
    u = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": d["added_tokens"], "normalizer": None,
         "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
             {"type": "WhitespaceSplit"},
             {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
         "post_processor": {"type": "TemplateProcessing",
                            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}},
                                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                            "special_tokens": {**special("<s>", 1), **special("</s>", 2)}},
         "decoder": None, "model": {"type": "Unigram", "unk_id": 0, "vocab": pieces, "byte_fallback": True}}
    json.dump(u, open(f"{out}/unigram_bf.json", "w", encoding="utf-8"), ensure_ascii=False)
    u["model"]["byte_fallback"] = False
    u["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    u["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    json.dump(u, open(f"{out}/unigram_unk.json", "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
