#!/usr/bin/python3
"""Compares an engine's outputs with a golden file of tests/golden/arch.

  compare.py OUTPUT.jsonl GOLDEN.json [--bar 0.99999] [--atol 1e-4] [--rtol 1e-4] [--quiet]

OUTPUT.jsonl: one JSON object per line (a JSON array of them works too), each
with "id" (or "index"): the sequence's index in GOLDEN's "sequences", and
  "embedding": [...]   the pooled vector (normalized or not: only the
                       direction is compared) -> cosine >= bar, or
  "logits": [...] / "scores": [...] / "score": x
                       a cross-encoder's raw logits -> cosine >= bar when there
                       are several, and every |got - want| <= atol + rtol*|want|
                       (a single logit has no direction: only the tolerance counts), and optionally
  "tokens": [[...], ...] the last hidden state per token -> cosine >= bar per token
                       (golden has them for a few sequences only; others are skipped).
Every golden sequence must be answered once. Prints one line per failing
sequence and a summary line:
  compare MODEL: N/N ok, min cos C (bar B)[, max logit err E][, tokens T/T]
Exit status 0 when all pass, 1 otherwise, 2 on unusable input.
"""
import argparse
import json
import math
import sys


def cosine(a, b):
    if len(a) != len(b):
        return float("nan")
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return dot / (na * nb)


def read_outputs(path):
    with open(path) as f:
        text = f.read()
    s = text.lstrip()
    if s.startswith("["):
        rows = json.loads(s)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    out = {}
    for r in rows:
        k = r.get("id", r.get("index"))
        if not isinstance(k, int):
            raise ValueError("output row without an integer id/index: %.80s" % json.dumps(r))
        if k in out:
            raise ValueError("id %d answered twice" % k)
        out[k] = r
    return out


def logits_of(r):
    for key in ("logits", "scores"):
        if key in r:
            return [float(x) for x in r[key]]
    if "score" in r:
        return [float(r["score"])]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("golden")
    ap.add_argument("--bar", type=float, default=0.99999)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    try:
        golden = json.load(open(a.golden))
        got = read_outputs(a.output)
    except (OSError, ValueError) as e:
        print("compare: %s" % e)
        return 2

    seqs = golden["sequences"]
    ok = 0
    min_cos = 1.0
    max_err = 0.0
    tok_ok = tok_n = 0
    extra = sorted(set(got) - set(range(len(seqs))))
    for i, g in enumerate(seqs):
        r = got.get(i)
        fail = []
        if r is None:
            fail.append("no output")
        elif "logits" in g:
            lg = logits_of(r)
            if lg is None or len(lg) != len(g["logits"]):
                fail.append("logits missing or of length %s, want %d" % (None if lg is None else len(lg), len(g["logits"])))
            else:
                err = max(abs(x - y) - a.rtol * abs(y) for x, y in zip(lg, g["logits"]))
                max_err = max(max_err, max(abs(x - y) for x, y in zip(lg, g["logits"])))
                if err > a.atol:
                    fail.append("logits %s, want %s" % (lg, g["logits"]))
                if len(lg) > 1:
                    c = cosine(lg, g["logits"])
                    min_cos = min(min_cos, c)
                    if not c >= a.bar:
                        fail.append("logit cosine %.9f" % c)
        else:
            e = r.get("embedding")
            if not isinstance(e, list) or len(e) != len(g["pooled"]):
                fail.append("embedding missing or of dimension %s, want %d" % (
                    len(e) if isinstance(e, list) else None, len(g["pooled"])))
            else:
                c = cosine([float(x) for x in e], g["pooled"])
                min_cos = min(min_cos, c) if c == c else float("nan")
                if not c >= a.bar:
                    fail.append("cosine %.9f" % c)
            if r is not None and "tokens" in r and "tokens" in g:
                if len(r["tokens"]) != len(g["tokens"]):
                    fail.append("%d token vectors, want %d" % (len(r["tokens"]), len(g["tokens"])))
                else:
                    for t, (x, y) in enumerate(zip(r["tokens"], g["tokens"])):
                        tok_n += 1
                        c = cosine([float(v) for v in x], y)
                        if c >= a.bar:
                            tok_ok += 1
                        else:
                            fail.append("token %d cosine %.9f" % (t, c))
        if fail:
            if not a.quiet:
                print("  id %d (length %d): %s" % (i, len(g["ids"]), "; ".join(fail[:4])))
        else:
            ok += 1
    line = "compare %s: %d/%d ok, min cos %.9f (bar %g)" % (golden.get("model", "?"), ok, len(seqs), min_cos, a.bar)
    if any("logits" in g for g in seqs):
        line += ", max logit err %.3g (atol %g rtol %g)" % (max_err, a.atol, a.rtol)
    if tok_n:
        line += ", tokens %d/%d" % (tok_ok, tok_n)
    if extra:
        line += ", %d ids not in the golden file" % len(extra)
    print(line)
    return 0 if ok == len(seqs) and not extra else 1


if __name__ == "__main__":
    sys.exit(main())
