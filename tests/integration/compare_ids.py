#!/usr/bin/env python3
"""Compares two {"id", "ids"} JSONL files line by line; exits 1 on any
difference, naming the first few with the texts they came from.
usage: compare_ids.py ORACLE.jsonl CEMBED.jsonl TEXTS.jsonl [MIN_LINES]"""
import json
import sys

oracle, mine, texts = (open(p, encoding="utf-8").read().splitlines() for p in sys.argv[1:4])
min_lines = int(sys.argv[4]) if len(sys.argv) > 4 else 1
texts = [l for l in texts if l.strip()]
if len(oracle) != len(mine) or len(oracle) != len(texts) or len(oracle) < min_lines:
    sys.exit(f"line counts differ or too few: oracle {len(oracle)}, cembed {len(mine)}, texts {len(texts)}")
bad = 0
for a, b, t in zip(oracle, mine, texts):
    a, b = json.loads(a), json.loads(b)
    if a["ids"] != b["ids"] or str(a["id"]) != str(b["id"]):
        bad += 1
        if bad <= 5:
            i = next((k for k, (x, y) in enumerate(zip(a["ids"], b["ids"])) if x != y), min(len(a["ids"]), len(b["ids"])))
            print(f"id {a['id']}: first difference at token {i}: oracle {a['ids'][i:i+5]} cembed {b['ids'][i:i+5]}"
                  f" text {json.loads(t)['text'][:80]!r}")
print(f"{len(oracle) - bad} of {len(oracle)} texts tokenized identically")
sys.exit(1 if bad else 0)
