#!/usr/bin/python3
"""Cosine of each row of a peer's vectors against the reference's (float32
rows, file order, as every peer of bench/arch.sh writes them with --out).

  cosine.py REF.f32 PEER.f32 DIMS   ->  prints "min mean" (1 - mean as %.2e)
"""
import sys

import numpy as np


def main():
    ref, peer, d = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a = np.fromfile(ref, dtype=np.float32).reshape(-1, d).astype(np.float64)
    b = np.fromfile(peer, dtype=np.float32).reshape(-1, d).astype(np.float64)
    if a.shape != b.shape:
        sys.exit("cosine.py: %s has %d rows, %s %d" % (ref, len(a), peer, len(b)))
    if d == 1:  # a reranker's one logit: 1 - relative difference stands in for a cosine
        c = 1 - np.abs(a - b)[:, 0] / np.maximum(1, np.abs(a[:, 0]))
    else:
        c = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    print("%.6f %.6f" % (c.min(), c.mean()))


if __name__ == "__main__":
    main()
