#!/bin/bash
# bench/arch_peers/decoders.sh: a decoder embedder at real size (Qwen2 / Qwen3
# layout, last-token pooling) against llama.cpp in its best configuration and
# ONNX Runtime where an export exists, at one sequence length.
#
# bench/arch.sh times llama.cpp through the shared bench_llamacpp.c (pooling
# NONE, flash attention off, its own context sizes); at 8,192 tokens that did
# not finish. Here llama.cpp runs through llama_last.c: n_ctx = n_batch =
# n_ubatch = the sequence length, flash attention on, llama.cpp's own LAST
# pooling, one sequence per llama_decode, so its vector is compared directly.
# It reuses arch.sh's work dir (model, GGUF F32 and Q8_0 made by arch.sh's
# prepare step or by hand), make_ids.py, build/bench_embed_ids and table.py.
#
# usage: bench/arch_peers/decoders.sh [--n N] [--len LO:HI] [--threads T] [--flash on|off|auto]
#                                     [--peers LIST] [--cold] MODEL
#   MODEL   qwen3-embedding-0.6b | jina-code-embeddings-0.5b | qwen2-1.5b
#   --peers comma list of cembed-fp32,cembed-bf16,cembed-int8,ort-fp32,ort-int8,llama-f32,llama-q8_0
#           (default: all; ORT where export_onnx.py wrote model.onnx / model-int8.onnx)
#   --cold  no warm-up for cembed (--warmup 0) and a 32-token warm-up for
#           llama.cpp (always): for long sequences, where a warm-up is a whole pass
# Every peer under nice -n 10 and /usr/bin/time -v; results in
# $ARCH_BENCH_WORK/results/decoders-DATE/MODEL@LEN/ with table.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
WORK=${ARCH_BENCH_WORK:-/tmp/archbench/work}
LLAMA_SRC=${LLAMA_SRC:-/work/llama.cpp-src-new}
LLAMA_BUILD=${LLAMA_BUILD:-/work/llama.cpp-build-new}
LC=$(head -c 8 "$LLAMA_SRC/COMMIT")
export BENCH_PEERS_NODE=${BENCH_PEERS_NODE:-/tmp/archbench/node}
N=3 LEN=480:512 THREADS=2 FLASH=on COLD=0 PEERS=cembed-fp32,cembed-bf16,cembed-int8,ort-fp32,ort-int8,llama-f32,llama-q8_0
while [ $# -gt 1 ]; do
	case $1 in
	--n) N=$2; shift ;;
	--len) LEN=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	--flash) FLASH=$2; shift ;;
	--peers) PEERS=$2; shift ;;
	--cold) COLD=1 ;;
	*) echo "decoders.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ $# = 1 ] || { sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
NAME=$1 D=$WORK/$1
want() { case ",$PEERS," in *",$1,"*) return 0 ;; esac; return 1; }

# llama_last against the chosen tree (the Feb 2025 one has the older API)
api=()
grep -q llama_memory_clear "$LLAMA_SRC/include/llama.h" || api=(-DLLAMA_FEB2025)
LL=$WORK/bin/llama_last-$LC
[ "$LL" -nt "$HERE/llama_last.c" ] || cc -O2 -std=c11 "${api[@]}" -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" \
	"$HERE/llama_last.c" -o "$LL" -L"$LLAMA_BUILD/bin" -Wl,-rpath,"$LLAMA_BUILD/bin" -lllama -lggml -lggml-base
make -C "$ROOT" -s -j2 build/bench_embed_ids >&2

IDS=$D/ids-$N-${LEN/:/-}.jsonl
meta=$($PY "$HERE/make_ids.py" "$NAME" "$N" "$IDS" --len "$LEN")
DIMS=${meta#* }
R=$WORK/results/decoders-$(date -u +%Y%m%dT%H%M%S)/$NAME@${LEN/:/-}
mkdir -p "$R"
echo "== $NAME: $N sequences of $LEN tokens, $THREADS threads, llama.cpp $LC flash $FLASH, load $(cut -d' ' -f1-3 /proc/loadavg)" |
	tee "$R/header.txt" >&2

measure() {
	local peer=$1; shift
	cut -d' ' -f1 /proc/loadavg >"$R/$peer.load"
	if /usr/bin/time -v -o "$R/$peer.time" nice -n 10 "$@" >"$R/$peer.json" 2>"$R/$peer.err"; then
		printf '  %-12s %s tokens/s (load %s)\n' "$peer" "$(grep -o '"tokens_per_s": *[0-9.]*' "$R/$peer.json" |
			grep -o '[0-9.]*$')" "$(cut -d' ' -f1 /proc/loadavg)" >&2
	else
		printf '  %-12s failed: %s\n' "$peer" "$(grep -v '^\s*$' "$R/$peer.err" | tail -1)" >&2
		rm -f "$R/$peer.f32"
	fi
}

warm=()
[ $COLD = 0 ] || warm=(--warmup 0)
for p in fp32 bf16 int8; do
	want cembed-$p || continue
	measure cembed-$p "$ROOT/build/bench_embed_ids" --model "$D/model" --ids "$IDS" --threads "$THREADS" \
		"${warm[@]}" --precision $p --out "$R/cembed-$p.f32"
done
for p in fp32 int8; do
	want ort-$p || continue
	m=$D/model.onnx
	[ $p = fp32 ] || m=$D/model-int8.onnx
	if [ -e "$m" ]; then
		measure ort-$p node "$HERE/ort_ids.js" --model "$m" --ids "$IDS" --threads "$THREADS" --pool last \
			--out "$R/ort-$p.f32"
	else
		echo "no $m (export_onnx.py)" >"$R/ort-$p.skip"
	fi
done
for g in f32 q8_0; do
	want llama-$g || continue
	measure llama-$g "$LL" --model "$D/llama-$LC-$g.gguf" --ids "$IDS" --threads "$THREADS" --flash "$FLASH" \
		--out "$R/llama-$g.f32"
done
$PY "$HERE/table.py" "$R" "$NAME@$LEN" "$DIMS" | tee "$R/table.md"
echo "results in $R" >&2
