#!/usr/bin/env bash
# Speed and memory of `cembed embed` against ONNX Runtime and PyTorch on the
# same weights and the same 2,000 real code chunks, in one invocation of the
# shared peer harness (../shared/bench-peers/run.sh: it tokenizes once with HF
# tokenizers, runs each peer and cembed one after another on a quiet machine,
# checks every vector against ONNX Runtime and prints tokens/s, peak RSS and
# ratios). Extra arguments go to the harness, e.g. --peers ort --threads 2.
#
# usage: bench/run.sh [HARNESS ARGS...]
# env:   SHARED (default ../shared), MODEL (default models/all-MiniLM-L6-v2),
#        TEXTS (default /tmp/bench-peers/texts.jsonl, made if missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$root/../shared}
harness="$shared/bench-peers"
model=${MODEL:-$root/models/all-MiniLM-L6-v2}
texts=${TEXTS:-/tmp/bench-peers/texts.jsonl}

[ -x "$harness/run.sh" ] || { echo "bench: $harness/run.sh not found (set SHARED)" >&2; exit 1; }
CEMBED_BENCH_DEPS=1 "$root/scripts/install-deps.sh"
make -C "$root" -s all
[ -f "$model/model.safetensors" ] || "$root/scripts/fetch-model.sh" "$model"
if [ ! -f "$texts" ]; then
  mkdir -p "$(dirname "$texts")"
  (cd "$harness" && ./make_texts.py --out "$texts")
fi
cd "$harness"
./run.sh --model "$model" --texts "$texts" \
  --cmd "$root/build/cembed embed --model {model} --threads {threads} --max-seq-len {max_len} {texts}" \
  --cmd-name cembed "$@"
cat /tmp/bench-peers/results/latest/report.md
