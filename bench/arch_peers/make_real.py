#!/usr/bin/python3
"""A random model of a real size, as tests/oracle/arch/make_models.py
--real-size writes it (same layout, config, vocabulary, seed), except the
scale of the weight matrices: N(0, 1/sqrt(fan_in)) instead of make_models'
N(0, 0.16), and embeddings N(0, 1).

  make_real.py REAL_NAME OUTDIR

Why: 0.16 suits the tiny goldens (fan-in 64..128, gain about 1.5), but at
fan-in 768..3072 it multiplies each projection's output by 4.4..8.9, the
attention scores reach the hundreds and the softmax becomes an argmax, so
the network is chaotic: fp32 rounding differences between two correct
engines (ORT and llama.cpp fp32 included) leave pooled vectors at cosine
0.3..0.5. With variance-preserving weights the vectors of correct engines
agree, and the cosine column of bench/arch.sh means something. The cost of a
forward pass does not depend on the values.
"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle", "arch"))
import common as C  # noqa: E402
import make_models as M  # noqa: E402


class ScaledRand(C.Rand):
    def mat(self, out_f, in_f, std=None):
        return self.normal((out_f, in_f), std if std is not None else 1.0 / math.sqrt(in_f))

    def emb(self, rows, cols):
        return self.normal((rows, cols), 1.0)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in M.REAL:
        sys.exit(__doc__)
    M.C.Rand = ScaledRand
    s = M.REAL[sys.argv[1]]()
    # sentence-transformers' max_seq_length: 512 for the learned-position
    # models (XLM-R's 514 rows start at pad + 1), up to 8192 for the long ones
    pos = s.cfg.get("max_position_embeddings", s.cfg.get("n_positions", 8192))
    n = M.write_model(s, sys.argv[2], max_seq_length=512 if pos <= 514 else min(pos, 8192))
    print("%s: %d parameters, matrices N(0, 1/sqrt(fan_in)) -> %s" % (sys.argv[1], n, sys.argv[2]))


if __name__ == "__main__":
    main()
