#!/usr/bin/python3
"""Several bench/arch.sh runs in one table per model: each figure as the
range over the runs (tokens/s, the ratios computed within each run, peak
RSS, load), the cosines as their minimum.

  ranges.py RESULTS_DIR... > RESULTS.md
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table as T  # noqa: E402

DIMS = {"bge-reranker-base": 1}


def rng(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    lo, hi = min(xs), max(xs)
    return fmt % lo if fmt % lo == fmt % hi else (fmt + "-" + fmt) % (lo, hi)


def main():
    runs = sys.argv[1:]
    models = [m for m in sorted(os.listdir(runs[0])) if os.path.isdir(os.path.join(runs[0], m))]
    for m in models:
        dirs = [os.path.join(r, m) for r in runs if os.path.isdir(os.path.join(r, m))]
        dims = DIMS.get(m.split("@")[0], 768)
        res = [{p: T.result(d, p) for p in T.PEERS} for d in dirs]
        tokens = next((x.get("tokens", x.get("real_tokens")) for x in res[0].values() if x), 0)
        print("\n### %s (%s tokens, %d runs)\n" % (m, tokens, len(dirs)))
        print("| peer | tokens/s | / ORT fp32 | / llama.cpp F32 | / llama.cpp Q8_0 | peak RSS MiB | min cos | load |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for p in T.PEERS:
            tps = [(r[p] or {}).get("tokens_per_s") for r in res]
            if not any(tps):
                skip = T.note(dirs[0], p, ".skip")
                if skip:
                    print("| %s | %s | | | | | | |" % (T.NAMES.get(p, p), skip))
                continue
            ratios = []
            for k in ("ort-fp32", "llama-f32", "llama-q8_0"):
                ratios.append(rng([t / (r[k] or {}).get("tokens_per_s", 0) if t and (r[k] or {}).get("tokens_per_s")
                                   else None for t, r in zip(tps, res)], "%.2f"))
            cos = [T.cosine(d, p, dims) for d in dirs]
            cos = [c[0] for c in cos if c]
            cs = "ref" if p == "cembed-fp32" else ("%.6f" % min(cos) if cos else "n/a")
            loads = [float(T.note(d, p, ".load") or "nan") for d in dirs]
            print("| %s | %s | %s | %s | %s | %s |" % (T.NAMES.get(p, p), rng(tps, "%.0f"), " | ".join(ratios),
                  rng([T.rss_mib(d, p) for d in dirs], "%.0f"), cs, rng([x for x in loads if x == x], "%.1f")))


if __name__ == "__main__":
    main()
