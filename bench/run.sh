#!/usr/bin/env bash
# Speed and memory of `cembed embed` at fp32, bf16 and int8 against ONNX
# Runtime fp32 (ort), ONNX Runtime's dynamically quantized int8 model
# (ort-int8) and PyTorch, on the same weights and the same 2,000 real code
# chunks, with the shared peer harness (../shared/bench-peers/run.sh: it
# tokenizes once with HF tokenizers, runs each peer and cembed one after
# another on a quiet machine, checks every vector against ONNX Runtime and
# prints tokens/s, peak RSS and ratios).
#
# The harness takes one command per run, so this runs it once per precision,
# each time with both ORT anchors beside it (a row's ratios are to the ORT
# runs of the same harness invocation: these machines are shared and their
# speed drifts) and PyTorch in the first run. Before that, build/gemm_peak
# measures this machine's GEMM peak per precision (oneDNN's matmul alone, or
# cembed's own where faster); the table at the end gives every ratio, the
# fraction of the speed those GEMMs alone would allow at that peak
# ("of GEMM peak": threads x peak / (2 x 10.65 M multiply-adds a token);
# attention, LayerNorm, GELU and quantization are what keeps it below 1), and
# the cost of a million 256-token chunks on a $0.07/h 2-vCPU machine.
# Extra arguments go to every harness run, e.g. --threads 2 or --limit 200.
#
# usage: bench/run.sh [HARNESS ARGS...]
# env:   SHARED (default ../shared), MODEL (default $XDG_DATA_HOME/cembed/models/all-MiniLM-L6-v2),
#        TEXTS (default /tmp/bench-peers/texts.jsonl, made if missing),
#        PRECISIONS (default "fp32 bf16 int8"), PEERS (every run's peers,
#        default ort,ort-int8), FIRST_PEERS (the first run's, default
#        $PEERS,torch), PRICE (dollars an hour, default 0.07), THREADS (2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$root/../shared}
harness="$shared/bench-peers"
model=${MODEL:-${XDG_DATA_HOME:-$HOME/.local/share}/cembed/models/all-MiniLM-L6-v2}
texts=${TEXTS:-/tmp/bench-peers/texts.jsonl}
precisions=${PRECISIONS:-fp32 bf16 int8}
peers=${PEERS:-ort,ort-int8}
first_peers=${FIRST_PEERS:-$peers,torch}
price=${PRICE:-0.07}
threads=${THREADS:-2}
results=${BENCH_PEERS_TMP:-/tmp/bench-peers}/results

[ -x "$harness/run.sh" ] || { echo "bench: $harness/run.sh not found (set SHARED)" >&2; exit 1; }
CEMBED_BENCH_DEPS=1 "$root/scripts/install-deps.sh"
make -C "$root" -s all build/gemm_peak
[ -f "$model/model.safetensors" ] || "$root/scripts/fetch-model.sh" "$model"
if [ ! -f "$texts" ]; then
  mkdir -p "$(dirname "$texts")"
  (cd "$harness" && ./make_texts.py --out "$texts")
fi
summary=$(mktemp)
echo "== GEMM peak (one core)"
"$root/build/gemm_peak" 2048 3 | tee "$summary.peak"
isa=$("$root/build/cembed" info --model "$model" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["isa"])')
cd "$harness"
rc=0
run_peers=$first_peers
for p in $precisions; do
  # the cosine bar of each precision against ORT's fp32 vectors (bench/fidelity.py has the full bars)
  case $p in fp32) mincos=0.99999 ;; bf16) mincos=0.9999 ;; *) mincos=0.98 ;; esac
  ./run.sh --model "$model" --texts "$texts" --peers "$run_peers" --threads "$threads" --cmd-min-cos "$mincos" \
    --cmd "$root/build/cembed embed --model {model} --threads {threads} --max-seq-len {max_len} --precision $p --no-cache --jsonl {texts}" \
    --cmd-name "cembed-$p" "$@" || rc=1
  cat "$results/latest/report.md"
  echo "== $p: $(readlink -f "$results/latest")" >>"$summary"
  cat "$results/latest/results.jsonl" >>"$summary"
  run_peers=$peers
done
python3 - "$summary" "$summary.peak" "$price" "$threads" "$isa" <<'EOF'
import json, sys
summary, peakfile, price, threads, isa = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
peak = {}
for line in open(peakfile):
    if line.startswith("peak fp32"):
        w = line.split()
        peak = {w[i]: float(w[i + 1]) for i in range(1, len(w), 2)}
MACS = 10646784   # the encoder's multiply-adds a token in its Linear layers (all-MiniLM-L6-v2)
rows, run = [], None
for line in open(summary):
    if line.startswith("== "):
        run = {"dir": line.split(": ", 1)[1].strip(), "rows": []}
        rows.append(run)
    elif line.strip():
        r = json.loads(line)
        if r.get("rc") == 0 and ("tokens_per_s" in r or "process_wall_s" in r):
            run["rows"] = [x for x in run["rows"] if x["name"] != r["name"]] + [r]   # the last attempt counts
for run in rows:
    # the command's rate, as the harness reports it: real tokens over its whole process
    tokens = next((x["real_tokens"] for x in run["rows"] if x.get("real_tokens")), None)
    for r in run["rows"]:
        if not r.get("tokens_per_s") and tokens:
            r["tokens_per_s"] = tokens / r["process_wall_s"]
    run["rows"] = [r for r in run["rows"] if r.get("tokens_per_s") and r["name"] != "sgemm"]   # sgemm: the GEMM probe
print(f"\n## All precisions ({isa}, {threads} threads; each ratio is to the ORT runs of the same harness invocation)\n")
print("| name | tokens/s | peak RSS MiB | ratio to ORT fp32 | ratio to ORT int8 | of GEMM peak | $ per 1M 256-token chunks |")
print("|---|---:|---:|---:|---:|---:|---:|")
for run in rows:
    ort = next((x for x in run["rows"] if x["name"] == "ort"), None)
    ort8 = next((x for x in run["rows"] if x["name"] == "ort-int8"), None)
    cmd = next((x["name"] for x in run["rows"] if x["name"].startswith("cembed-")), "?")
    for r in run["rows"]:
        tps = r["tokens_per_s"]
        ratio = f"{tps / ort['tokens_per_s']:.2f}" if ort else "-"
        ratio8 = f"{tps / ort8['tokens_per_s']:.2f}" if ort8 else "-"
        frac = "-"
        if r["name"].startswith("cembed-") and r["name"][7:] in peak:
            frac = f"{tps / (threads * peak[r['name'][7:]] * 1e9 / (2 * MACS)):.2f}"
        cost = 1e6 * 256 / tps / 3600 * price
        name = r["name"] if r["name"].startswith("cembed-") else f"{r['name']} (beside {cmd})"
        print(f"| {name} | {tps:.0f} | {r.get('peak_rss_mib', 0):.0f} | {ratio} | {ratio8} | {frac} | {cost:.2f} |")
EOF
rm -f "$summary" "$summary.peak"
exit $rc
