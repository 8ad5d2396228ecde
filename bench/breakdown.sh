#!/usr/bin/env bash
# Where the time of `cembed embed` goes, per precision and ISA level: runs
# the same chunks with CEMBED_PROFILE=tsv (the timers built into cembed,
# src/base/prof.h: start-up phases, tokenizing, the forward pass split into
# GEMM, attention, activation quantizing, dequantize/bias epilogue, GELU,
# LayerNorm + residual, the rest, and output writing) at each precision
# (fp32, bf16, int8) and each ISA level this CPU offers (ONEDNN_MAX_CPU_ISA
# caps oneDNN and cembed's kernels together), and prints one table per level:
# each row's share of the whole process's wall time (measured from outside,
# so "exec, libraries" is what comes before main) and its rate. GEMM and
# attention rates are also given against this machine's peak for that work,
# per thread, from build/gemm_peak at the same level: oneDNN's matmul alone
# at the precision (GEMM), and the instruction peak of what attention runs
# on (16-wide FMA, 8-wide at AVX2, for fp32; vdpbf16ps for the bf16
# products that int8 and bf16 use where they are fast: `cembed info`'s
# "attention" at that level says which). The weight cache is off, so the
# start-up rows show what preparing the weights costs.
#
# usage: bench/breakdown.sh
# env:   MODEL (default $XDG_DATA_HOME/cembed/models/all-MiniLM-L6-v2),
#        TEXTS (JSON lines; default: the first N chunks of the peer harness's
#        texts, /tmp/bench-peers/texts.jsonl, made if missing), N (200),
#        PRECISIONS ("fp32 bf16 int8"), ISAS (default: every level `cembed
#        info` lists), THREADS (2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${MODEL:-${XDG_DATA_HOME:-$HOME/.local/share}/cembed/models/all-MiniLM-L6-v2}
n=${N:-200}
precisions=${PRECISIONS:-fp32 bf16 int8}
threads=${THREADS:-2}
make -C "$root" -s build/cembed build/gemm_peak
[ -f "$model/model.safetensors" ] || "$root/scripts/fetch-model.sh" "$model"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# copies: a rebuild during the run must not change what runs
cp "$root/build/cembed" "$root/build/gemm_peak" "$tmp/"
texts=${TEXTS:-}
if [ -z "$texts" ]; then
  texts=/tmp/bench-peers/texts.jsonl
  if [ ! -f "$texts" ]; then
    mkdir -p "$(dirname "$texts")"
    (cd "$root/../shared/bench-peers" && ./make_texts.py --out "$texts")
  fi
fi
head -n "$n" "$texts" >"$tmp/texts.jsonl"
isas=${ISAS:-$("$tmp/cembed" info --model "$model" |
  python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["isa_levels"]))')}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "# $cpu, $(nproc) CPUs, $threads threads, $(wc -l <"$tmp/texts.jsonl") chunks"
for isa in $isas; do
  ONEDNN_MAX_CPU_ISA=$isa "$tmp/gemm_peak" 512 3 >"$tmp/peak.$isa" 2>&1
  for p in $precisions; do
    out="$tmp/run.$isa.$p"
    if ! ONEDNN_MAX_CPU_ISA=$isa EMBEDDING_WEIGHT_CACHE=off CEMBED_PROFILE=tsv /usr/bin/time -f "time %e %M" -o "$out.time" \
        "$tmp/cembed" embed --model "$model" --precision "$p" --threads "$threads" --no-cache \
        "$tmp/texts.jsonl" >/dev/null 2>"$out"; then
      echo "cembed at $p on $isa failed:" >&2
      tail -3 "$out" >&2
      continue
    fi
    cat "$out.time" >>"$out"
    # what attention runs in at this level (bf16 products only where they are fast)
    ONEDNN_MAX_CPU_ISA=$isa "$tmp/cembed" info --model "$model" --precision "$p" |
      python3 -c 'import json, sys; print(json.load(sys.stdin).get("attention", "fp32"))' >"$out.attn"
  done
  python3 - "$tmp" "$isa" "$precisions" <<'EOF'
import os, sys
tmp, isa, precs = sys.argv[1], sys.argv[2], sys.argv[3].split()
peak = {}
for line in open(f"{tmp}/peak.{isa}"):
    w = line.split()
    if line.startswith("peak fp32"):
        peak.update({w[i]: float(w[i + 1]) for i in range(1, len(w), 2)})
    elif line.startswith("peak fma zmm"):
        peak["fma"] = float(w[3])
    elif line.startswith("peak fma ymm"):
        peak.setdefault("fma", float(w[3]))
    elif line.startswith("peak vdpbf16ps"):
        peak["vdpbf16ps"] = float(w[3])
runs, order = {}, []
for p in precs:
    path = f"{tmp}/run.{isa}.{p}"
    if not os.path.exists(path):
        continue
    rows, wall, rss, what = {}, 0.0, 0, ""
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "prof" and f[1] == "#what":
            what, total = f[2], float(f[4])
        elif f[0] == "prof":
            rows[f[1]] = (float(f[3]), float(f[5]), f[6])   # wall seconds, rate, unit
            if f[1] not in order:
                order.append(f[1])
        elif line.startswith("time "):
            wall, rss = float(f[0].split()[1]), int(f[0].split()[2])
    rows["exec, libraries (before main)"] = (max(0.0, wall - total), 0.0, "")
    attn = open(path + ".attn").read().strip() if os.path.exists(path + ".attn") else "fp32"
    runs[p] = (rows, wall, rss, what, attn)
if not runs:
    sys.exit(0)
order = ["exec, libraries (before main)"] + order
print(f"\n## {isa}\n")
for p, (rows, wall, rss, what, attn) in runs.items():
    print(f"- {p}: {what}, attention in {attn}; {wall:.2f} s wall, peak RSS {rss / 1024:.1f} MiB")
print()
print("| | " + " | ".join(runs) + " |")
print("|---|" + "---|" * len(runs))
for name in order:
    cells = []
    for p, (rows, wall, rss, what, attn) in runs.items():
        w, rate, unit = rows.get(name, (0.0, 0.0, ""))
        cell = f"{100 * w / wall:.1f}%" if wall else "-"
        if rate:
            cell += f", {rate:.4g} {unit}"
            ref = None
            if name.strip() == "GEMM":
                ref = peak.get(p)
            elif name.strip() == "attention":
                ref = peak.get("vdpbf16ps") if attn == "bf16" and "vdpbf16ps" in peak else peak.get("fma")
            if ref:
                cell += f" ({100 * rate / ref:.0f}% of {ref:.0f})"
        cells.append(cell)
    print(f"| {name.strip()} | " + " | ".join(cells) + " |")
EOF
done
