#!/usr/bin/python3
"""Token-id sequences for bench/arch.sh, the same file for every peer.

  make_ids.py REAL_NAME N OUT.jsonl [--len 32:512] [--seed 0]

N sequences {"id": "sN", "ids": [...]}, lengths uniform in the --len range
(code-chunk-like: a 40-line chunk of source is a few hundred tokens), random
ids from the model's ordinary vocabulary (make_models.py's filler range),
first the model's CLS id and last its SEP id (a decoder, whose CLS and
SEP are both <|endoftext|>: that id last only). Prints "POOL DIMS" for the
peers: POOL mean | cls | logits (a reranker), DIMS the vector's floats.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle", "arch"))
import make_models as M  # noqa: E402


def main():
    a = [x for x in sys.argv[1:]]
    opts = {"--len": "32:512", "--seed": "0"}
    for k in list(opts):
        if k in a:
            i = a.index(k)
            opts[k] = a[i + 1]
            del a[i:i + 2]
    if len(a) != 3 or a[0] not in M.REAL:
        sys.exit(__doc__)
    s = M.REAL[a[0]]()
    n, out = int(a[1]), a[2]
    lo, hi = (int(x) for x in opts["--len"].split(":"))
    rng = random.Random(int(opts["--seed"]))
    with open(out, "w") as f:
        for i in range(n):
            k = rng.randint(lo, hi)
            # a decoder (Qwen: CLS = SEP = <|endoftext|>) has no first special,
            # only the template's <|endoftext|> last
            first = [] if s.cls == s.sep else [s.cls]
            ids = first + [rng.randrange(s.filler[0], s.filler[1]) for _ in range(k - 1 - len(first))] + [s.sep]
            f.write(json.dumps({"id": "s%d" % i, "ids": ids}, separators=(",", ":")) + "\n")
    if s.kind == "embed":
        print(s.pooling, s.cfg.get("hidden_size", s.cfg.get("n_embd")))
    else:
        print("logits", s.cfg.get("num_labels", len(s.cfg.get("id2label", {0: 0}))))


if __name__ == "__main__":
    main()
