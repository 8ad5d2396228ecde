#!/usr/bin/env python3
"""Makes hand-built texts that stress tokenizers beyond source code: CJK,
Arabic, Devanagari, emoji (with ZWJ and skin tones), combining marks, odd
whitespace (tabs, CR, NBSP, ideographic space, runs of spaces and newlines),
digits runs, apostrophe contractions in both cases, and literal special
tokens of the usual families (<|endoftext|>, <s>, </s>, [CLS], <pad>, ...)
glued to words, spaced, and repeated. Deterministic for a seed.

usage: make_mixed.py --n 1000 [--seed 0] OUT   (JSON lines {"id", "text"})
"""
import argparse
import json
import random

WORDS = [
    "hello", "World", "the", "quick", "BROWN", "fox", "naïve", "café", "Ünïcödé", "straße", "ΣΊΣΥΦΟΣ", "ὀδυσσεύς",
    "中文", "日本語のテキスト", "한국어", "العربية", "עברית", "हिन्दी", "ไทย", "Русский", "ǅemal", "ﬁle", "Ⅻ", "①②",
    "e\u0301", "a\u0308\u0301", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "∑x²", "½", "٣٤٥", "१२३", "x86_64", "__init__",
    "can't", "WON'T", "I'M", "you'Re", "we've", "they'll", "he'd", "it's", "'S", "'ll",
    "123", "4567890", "3.14159", "1,000,000", "0x1F", "v2.0.1", "#include", "<stdio.h>", "->", "::", "&&", "!=",
    "def", "return", "{", "}", "(", ")", "[", "]", "\"quoted\"", "'single'", "`tick`", "--", "...", "—", "…",
]
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<pad>", "<unk>", "<mask>", "[CLS]", "[SEP]",
    "[MASK]", "[PAD]", "[UNK]", "<|begin_of_text|>", "<|eot_id|>", "<bos>", "<eos>", "<start_of_turn>",
    "<0x41>", "▁", "Ġ", "##s",
]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000", " \n ", "\u2009", "\u200b",
          "\u0085", "\ufeff", "    ", "\n    "]


def text(rng):
    n = rng.randint(1, 40)
    out = []
    if rng.random() < 0.3:
        out.append(rng.choice(SPACES))
    for _ in range(n):
        r = rng.random()
        if r < 0.12:
            out.append(rng.choice(SPECIAL))
        else:
            w = rng.choice(WORDS)
            out.append(w.upper() if rng.random() < 0.1 else w)
        r = rng.random()
        out.append("" if r < 0.15 else rng.choice(SPACES))
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    fixed = ["", " ", "  ", "\n", "a", "<s>", "</s>", "<|endoftext|>", "[CLS]", " <s> ", "<s><s>", "hello<s>world",
             "<|endoftext|>hello", "hello <|endoftext|> world", "ab" * 300, "9" * 50, " " * 40, "\n" * 10 + "x"]
    with open(a.out, "w", encoding="utf-8") as f:
        for i, t in enumerate(fixed):
            f.write(json.dumps({"id": f"fixed{i}", "text": t}, ensure_ascii=False) + "\n")
        for i in range(a.n):
            f.write(json.dumps({"id": f"mixed{i}", "text": text(rng)}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
