#!/usr/bin/env bash
# Speed and memory of `cembed embed` at fp32, bf16 and int8 against ONNX
# Runtime (fp32) and PyTorch on the same weights and the same 2,000 real code
# chunks, with the shared peer harness (../shared/bench-peers/run.sh: it
# tokenizes once with HF tokenizers, runs each peer and cembed one after
# another on a quiet machine, checks every vector against ONNX Runtime and
# prints tokens/s, peak RSS and ratios).
#
# The harness takes one command per run, so this runs it once per precision,
# each time with ONNX Runtime beside it (the ratio of a row is to the ORT run
# of the same harness invocation: these machines are shared and their speed
# drifts) and PyTorch in the first run; then prints one table of all rows.
# Extra arguments go to every harness run, e.g. --threads 2 or --limit 200.
#
# usage: bench/run.sh [HARNESS ARGS...]
# env:   SHARED (default ../shared), MODEL (default models/all-MiniLM-L6-v2),
#        TEXTS (default /tmp/bench-peers/texts.jsonl, made if missing),
#        PRECISIONS (default "fp32 bf16 int8"), PEERS (first run's peers,
#        default ort,torch)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$root/../shared}
harness="$shared/bench-peers"
model=${MODEL:-$root/models/all-MiniLM-L6-v2}
texts=${TEXTS:-/tmp/bench-peers/texts.jsonl}
precisions=${PRECISIONS:-fp32 bf16 int8}
peers=${PEERS:-ort,torch}
results=${BENCH_PEERS_TMP:-/tmp/bench-peers}/results

[ -x "$harness/run.sh" ] || { echo "bench: $harness/run.sh not found (set SHARED)" >&2; exit 1; }
CEMBED_BENCH_DEPS=1 "$root/scripts/install-deps.sh"
make -C "$root" -s all
[ -f "$model/model.safetensors" ] || "$root/scripts/fetch-model.sh" "$model"
if [ ! -f "$texts" ]; then
  mkdir -p "$(dirname "$texts")"
  (cd "$harness" && ./make_texts.py --out "$texts")
fi
cd "$harness"
summary=$(mktemp)
rc=0
for p in $precisions; do
  # the cosine bar of each precision against ORT's fp32 vectors (bench/fidelity.py has the full bars)
  case $p in fp32) mincos=0.99999 ;; bf16) mincos=0.9999 ;; *) mincos=0.98 ;; esac
  ./run.sh --model "$model" --texts "$texts" --peers "$peers" --cmd-min-cos "$mincos" \
    --cmd "$root/build/cembed embed --model {model} --threads {threads} --max-seq-len {max_len} --precision $p --no-cache --jsonl {texts}" \
    --cmd-name "cembed-$p" "$@" || rc=1
  cat "$results/latest/report.md"
  echo "== $p: $(readlink -f "$results/latest")" >>"$summary"
  cat "$results/latest/results.jsonl" >>"$summary"
  peers=ort
done
python3 - "$summary" <<'EOF'
import json, sys
rows, run = [], None
for line in open(sys.argv[1]):
    if line.startswith("== "):
        run = {"dir": line.split(": ", 1)[1].strip(), "rows": []}
        rows.append(run)
    elif line.strip():
        r = json.loads(line)
        if r.get("rc") == 0 and ("tokens_per_s" in r or "process_wall_s" in r):
            run["rows"] = [x for x in run["rows"] if x["name"] != r["name"]] + [r]   # the last attempt counts
for run in rows:
    # the command's rate, as the harness reports it: real tokens over its whole process
    tokens = next((x["real_tokens"] for x in run["rows"] if "real_tokens" in x), None)
    for r in run["rows"]:
        if "tokens_per_s" not in r and tokens:
            r["tokens_per_s"] = tokens / r["process_wall_s"]
    run["rows"] = [r for r in run["rows"] if "tokens_per_s" in r and r["name"] != "sgemm"]   # sgemm: the GEMM probe
print("\n## All precisions (each ratio is to the ORT run of the same harness invocation)\n")
print("| name | tokens/s | peak RSS MiB | ratio to ORT | ORT tokens/s in that run |")
print("|---|---:|---:|---:|---:|")
for run in rows:
    ort = next((x for x in run["rows"] if x["name"] == "ort"), None)
    for r in run["rows"]:
        if r["name"] == "ort" and run is not rows[0]:
            continue
        ratio = f"{r['tokens_per_s'] / ort['tokens_per_s']:.3f}" if ort else "-"
        print(f"| {r['name']} | {r['tokens_per_s']:.0f} | {r.get('peak_rss_mib', 0):.0f} | {ratio} |"
              f" {ort['tokens_per_s']:.0f} |" if ort else " - |")
EOF
rm -f "$summary"
exit $rc
