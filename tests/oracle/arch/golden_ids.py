#!/usr/bin/python3
"""Prints a golden file's inputs as JSON lines, the form an engine run over
token ids can read and compare.py's OUTPUT can answer by id:

  golden_ids.py tests/golden/arch/ce-bert/golden-torch.json
  {"id": 0, "ids": [2, 17, 3, 40, 3], "token_type_ids": [0, 0, 0, 1, 1]}
  ...

token_type_ids is 0 before the sequence's type1_from and 1 from it on (BERT
cross-encoder pairs); all 0 for every other model.
"""
import json
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_ids.py GOLDEN.json")
    g = json.load(open(sys.argv[1]))
    for i, s in enumerate(g["sequences"]):
        n, t1 = len(s["ids"]), s["type1_from"]
        print(json.dumps({"id": i, "ids": s["ids"], "token_type_ids": [0] * t1 + [1] * (n - t1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
