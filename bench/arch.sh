#!/bin/bash
# bench/arch.sh: the speed of cembed's encoder architectures at their real
# size, against ONNX Runtime and llama.cpp on the same weights and the same
# token ids, every peer on the same number of threads.
#
# For each model (a real-size name of tests/oracle/arch/make_models.py) it
#   - writes a random model of that size in the exact HF layout
#     (arch_peers/make_real.py: make_models' layout and seed, weights scaled
#     1/sqrt(fan_in) so that the network is not chaotic and cosines mean
#     something), into the work dir (not committed; reused by later runs);
#   - writes N id sequences, lengths uniform in --len (code-chunk-like), the
#     model's CLS first and SEP last (arch_peers/make_ids.py), one file for all;
#   - exports ONNX from the PyTorch ports (arch_peers/export_onnx.py: fp32, and
#     the dynamic-int8 graph of quantize_dynamic(per_channel=True)) and a GGUF
#     (tests/oracle/llamacpp/to_gguf.py, F32; Q8_0 by libllama's
#     llama_model_quantize, arch_peers/llama_q8.c);
#   - runs cembed fp32 / bf16 / int8 (build/bench_embed_ids: cembed_run_ids,
#     batches of 32 sorted by length), ORT fp32 / int8 (arch_peers/ort_ids.js,
#     onnxruntime-node of /work/shared/bench-peers' lock, one sequence per run:
#     the ports' graph has batch 1, so ORT pads nothing), llama.cpp F32 / Q8_0
#     (/work/shared/bench-peers/bench_llamacpp.c, built here against
#     $LLAMA_BUILD: packs sequences up to the longest one per llama_decode;
#     its mean-pooled dump is compared for mean-pooling models, and for CLS
#     pooling and rerankers llama.cpp's own pooling / RANK head through
#     tests/oracle/llamacpp's embed_ids on the first 8 sequences, untimed),
#     each under /usr/bin/time -v, after one warm-up call, the whole id file
#     timed (model load not timed);
#   - checks every peer's vectors against cembed fp32 (cosine, min and mean;
#     a reranker's one logit: 1 - |diff| / max(1, |ref|));
#   - prints one table: tokens/s, the ratio to ORT fp32 and to llama.cpp
#     F32 / Q8_0, peak RSS, min cosine.
#
# usage: bench/arch.sh [--quick] [--n N] [--len LO:HI] [--threads T] [--long | --long-only] [--long-n N] [--long-len L]
#                      [--work DIR] [--peers LIST] [MODEL...]
#   MODEL    make_models.py real-size names; default: nomic-embed-text-v1.5
#            jina-embeddings-v2-base-en multilingual-e5-base gte-modernbert-base
#            bge-reranker-base
#   --quick  4 sequences per model (default 12, about 3,500 tokens)
#   --long   also --long-n (4) sequences of --long-len (2048) tokens for the
#            models whose limit allows it; --long-only: those alone
#   --peers  comma list of cembed-fp32,cembed-bf16,cembed-int8,ort-fp32,ort-int8,
#            llama-f32,llama-q8_0 (default all)
# Environment: ARCH_BENCH_WORK (/tmp/archbench/work), LLAMA_SRC and LLAMA_BUILD
# (/work/llama.cpp-src-new and -build-new where that build exists: it has
# ModernBERT; else /work/llama.cpp-src, /work/llama.cpp-build), BENCH_PEERS_DIR
# (/work/shared/bench-peers), BENCH_PEERS_NODE (/tmp/archbench/node).
# Needs: /usr/bin/python3 with Debian's torch and numpy, node + npm, cc, a
# llama.cpp build (tests/oracle/llamacpp/build.sh), /usr/bin/time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
P=$HERE/arch_peers
PY=/usr/bin/python3
WORK=${ARCH_BENCH_WORK:-/tmp/archbench/work}
# the newer llama.cpp tree where there is one (it has ModernBERT), else the pinned one
if [ -z "${LLAMA_SRC:-}" ] && [ -e /work/llama.cpp-build-new/bin/libllama.so ]; then
	LLAMA_SRC=/work/llama.cpp-src-new LLAMA_BUILD=/work/llama.cpp-build-new
fi
LLAMA_SRC=${LLAMA_SRC:-/work/llama.cpp-src}
LLAMA_BUILD=${LLAMA_BUILD:-/work/llama.cpp-build}
LC=$(head -c 8 "$LLAMA_SRC/COMMIT" 2>/dev/null || echo unknown)   # GGUFs and tools are per llama.cpp commit
PEERS_DIR=${BENCH_PEERS_DIR:-/work/shared/bench-peers}
export BENCH_PEERS_NODE=${BENCH_PEERS_NODE:-/tmp/archbench/node}
N=12 LEN=32:512 THREADS=2 LONG=0 LONG_N=4 LONG_LEN=2048 MAIN=1
PEERS=cembed-fp32,cembed-bf16,cembed-int8,ort-fp32,ort-int8,llama-f32,llama-q8_0
MODELS=()
while [ $# -gt 0 ]; do
	case $1 in
	--quick) N=4 ;;
	--n) N=$2; shift ;;
	--len) LEN=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	--long) LONG=1 ;;
	--long-only) LONG=1 MAIN=0 ;;
	--long-n) LONG_N=$2; shift ;;
	--long-len) LONG_LEN=$2; shift ;;
	--work) WORK=$2; shift ;;
	--peers) PEERS=$2; shift ;;
	-h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "arch.sh: unknown option $1" >&2; exit 2 ;;
	*) MODELS+=("$1") ;;
	esac
	shift
done
[ ${#MODELS[@]} -gt 0 ] || MODELS=(nomic-embed-text-v1.5 jina-embeddings-v2-base-en multilingual-e5-base
	gte-modernbert-base bge-reranker-base)
die() { echo "arch.sh: $*" >&2; exit 1; }
want() { case ",$PEERS," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- tools, built once -------------------------------------------------------
setup() {
	mkdir -p "$WORK/bin"
	make -C "$ROOT" -s -j2 build/bench_embed_ids >&2 || die "cannot build build/bench_embed_ids"
	if [ ! -e "$BENCH_PEERS_NODE/node_modules/onnxruntime-node/package.json" ]; then
		mkdir -p "$BENCH_PEERS_NODE"
		cp "$PEERS_DIR/package.json" "$PEERS_DIR/package-lock.json" "$BENCH_PEERS_NODE/"
		# --ignore-scripts: the postinstall fetches CUDA binaries; the CPU runtime is in the tarball
		(cd "$BENCH_PEERS_NODE" && npm ci --ignore-scripts --no-audit --no-fund >&2) || die "npm ci failed"
	fi
	[ -e "$LLAMA_BUILD/bin/libllama.so" ] || die "no $LLAMA_BUILD/bin/libllama.so (tests/oracle/llamacpp/build.sh)"
	local inc="-I$LLAMA_SRC/include -I$LLAMA_SRC/ggml/include" lib="-L$LLAMA_BUILD/bin -Wl,-rpath,$LLAMA_BUILD/bin"
	local api=()
	# newer llama.h: llama_kv_cache_clear is gone; bench_llamacpp.c calls it once per decode
	grep -q llama_memory_clear "$LLAMA_SRC/include/llama.h" &&
		api=('-Dllama_kv_cache_clear(c)=llama_memory_clear(llama_get_memory(c), true)')
	# shellcheck disable=SC2086
	[ -x "$WORK/bin/bench_llamacpp-$LC" ] || cc -O2 -std=c11 -march=native $inc "${api[@]}" \
		-DBENCH_LLAMA_COMMIT="\"$(cat "$LLAMA_SRC/COMMIT" 2>/dev/null || echo unknown)\"" \
		"$PEERS_DIR/bench_llamacpp.c" -o "$WORK/bin/bench_llamacpp-$LC" $lib -lllama -lggml -lggml-base -lm
	# shellcheck disable=SC2086
	[ -x "$WORK/bin/llama_q8-$LC" ] || cc -O2 $inc "$P/llama_q8.c" -o "$WORK/bin/llama_q8-$LC" $lib -lllama
}

# ---- the model's files, made once per work dir --------------------------------
prepare() {
	local name=$1 d=$WORK/$1 rc=0
	mkdir -p "$d"
	[ -e "$d/model/model.safetensors" ] || $PY "$P/make_real.py" "$name" "$d/model" >&2
	if want ort-fp32 && [ ! -e "$d/model.onnx" ]; then
		$PY "$P/export_onnx.py" "$name" "$d/model" "$d/model.onnx" 2>"$d/export.log" >&2 || die "ONNX export: $d/export.log"
	fi
	if want ort-int8 && [ ! -e "$d/model-int8.onnx" ]; then
		$PY "$P/export_onnx.py" "$name" "$d/model" "$d/model-int8.onnx" --int8 2>"$d/export-int8.log" >&2 ||
			die "ONNX int8 export: $d/export-int8.log"
	fi
	local g=$d/llama-$LC
	if [ ! -e "$g-f32.gguf" ] && [ ! -e "$g.unsupported" ]; then
		PYTHONPATH=$LLAMA_SRC/gguf-py $PY "$ROOT/tests/oracle/llamacpp/to_gguf.py" "$d/model" "$g-f32.gguf" \
			>"$g.log" 2>&1 || rc=$?
		[ $rc = 0 ] || { [ $rc = 3 ] && tail -1 "$g.log" >"$g.unsupported"; } || die "GGUF: $g.log"
	fi
	if [ -e "$g-f32.gguf" ] && [ ! -e "$g-q8_0.gguf" ]; then
		"$WORK/bin/llama_q8-$LC" "$g-f32.gguf" "$g-q8_0.gguf" "$THREADS" >"$g-q8.log" 2>&1 || die "Q8_0: $g-q8.log"
	fi
	# for the untimed check of CLS / RANK models: embed_ids wants an F32 token_embd
	if [ -e "$g-f32.gguf" ] && [ ! -e "$g-q8_0-embdf32.gguf" ] && [ "$(sed -n 's/ *"pooling_mode_mean_tokens": *//p' \
		"$d/model/1_Pooling/config.json" 2>/dev/null)" != "true," ]; then
		"$WORK/bin/llama_q8-$LC" "$g-f32.gguf" "$g-q8_0-embdf32.gguf" "$THREADS" embd-f32 >>"$g-q8.log" 2>&1 ||
			die "Q8_0: $g-q8.log"
	fi
}

# ---- one timed run: R/PEER.json (its result line), .time, .err, .f32 -----------
measure() {
	local peer=$1; shift
	cut -d' ' -f1 /proc/loadavg >"$R/$peer.load"
	if /usr/bin/time -v -o "$R/$peer.time" "$@" >"$R/$peer.json" 2>"$R/$peer.err"; then
		printf '  %-12s %s\n' "$peer" "$(grep -o '"tokens_per_s": *[0-9.]*' "$R/$peer.json" | grep -o '[0-9.]*$')" >&2
	else
		printf '  %-12s failed: %s\n' "$peer" "$(grep -v '^\s*$' "$R/$peer.err" | tail -1)" >&2
		rm -f "$R/$peer.f32"
	fi
}

run_peers() {
	local d=$1 ids=$2 pool=$3
	local e="$ROOT/build/bench_embed_ids --model $d/model --ids $ids --threads $THREADS $CEMBED_WARM"
	for p in fp32 bf16 int8; do
		# shellcheck disable=SC2086
		if want cembed-$p; then measure cembed-$p $e --precision $p --out "$R/cembed-$p.f32"; fi
	done
	for p in fp32 int8; do
		local m=$d/model.onnx
		[ $p = int8 ] && m=$d/model-int8.onnx
		want ort-$p || continue
		measure ort-$p node "$P/ort_ids.js" --model "$m" --ids "$ids" --threads "$THREADS" \
			--pool "$pool" --out "$R/ort-$p.f32"
	done
	for g in f32 q8_0; do
		want llama-$g || continue
		if [ -e "$d/llama-$LC.unsupported" ]; then
			echo "not in llama.cpp $LC: $(sed 's|.*/model: ||' "$d/llama-$LC.unsupported")" >"$R/llama-$g.skip"
			continue
		fi
		# a decoder (last-token pooling: Qwen2/Qwen3) has a KV cache in llama.cpp, split
		# n_ctx / n_seq_max cells a sequence: one sequence per llama_decode
		local seqs=()
		[ "$pool" != last ] || seqs=(--max-seqs 1)
		measure llama-$g "$WORK/bin/bench_llamacpp-$LC" --model "$d/llama-$LC-$g.gguf" --ids "$ids" \
			--threads "$THREADS" --order file "${seqs[@]}" --dump "$R/llama-$g.f32"
		# its dump is mean-pooled hidden states: comparable only for a mean-pooling embedding model
		[ "$pool" = mean ] || { rm -f "$R/llama-$g.f32"; echo "timed on hidden states; $pool not compared" >"$R/llama-$g.nocos"; }
		if [ "$pool" != mean ] && [ -x "$LLAMA_BUILD/bin/embed_ids" ] && [ "$LLAMA_CHECK" = 1 ]; then
			local cg=$d/llama-$LC-$g.gguf
			[ $g = q8_0 ] && cg=$d/llama-$LC-q8_0-embdf32.gguf
			llama_check "$cg" "$ids" "$R/llama-$g" "$pool"
		fi
	done
}

# A CLS-pooled model's vectors or a reranker's logits from llama.cpp with the
# GGUF's own pooling (CLS, or the RANK head), through tests/oracle/llamacpp's
# embed_ids (one sequence per call, untimed), for the first 8 sequences: OUT.f32.
llama_check() {
	local gguf=$1 ids=$2 out=$3 pool=$4 ctx key=pooled
	[ "$pool" = logits ] && key=logits
	ctx=$($PY -c 'import json, sys
rows = [json.loads(l)["ids"] for l in list(open(sys.argv[1]))[:8]]
with open(sys.argv[2], "w") as f:
    for r in rows: print(-1, *r, file=f)
print(max(len(r) for r in rows))' "$ids" "$out.ids.txt")
	if "$LLAMA_BUILD/bin/embed_ids" -j "$THREADS" -c "$ctx" "$gguf" "$out.ids.txt" >"$out.check.jsonl" 2>"$out.check.err"; then
		$PY -c 'import json, sys, numpy as np
np.array([json.loads(l)[sys.argv[3]] for l in open(sys.argv[1])], dtype=np.float32).tofile(sys.argv[2])' \
			"$out.check.jsonl" "$out.f32" "$key"
		echo "timed on hidden states (no $pool); cosine: llama.cpp's own $pool of the first 8 sequences (embed_ids, untimed)" >"$out.nocos"
	fi
}


bench_one() {
	local name=$1 tag=$2 n=$3 len=$4 d=$WORK/$1
	local ids=$d/ids-$n-${len/:/-}.jsonl meta pool dims
	meta=$($PY "$P/make_ids.py" "$name" "$n" "$ids" --len "$len")
	pool=${meta% *} dims=${meta#* }
	R=$RESULTS/$name$tag
	mkdir -p "$R"
	echo "== $name$tag: $n sequences, lengths $len, $(python3 -c "import json,sys; print(sum(len(json.loads(l)['ids']) for l in open(sys.argv[1])))" "$ids") tokens, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	# a long sequence (4,096 tokens and more) takes minutes on 2 cores: cembed
	# runs it cold (no warm-up call; llama.cpp still warms up, untimed), and
	# llama.cpp's untimed pooled check is left out (the cosine column then
	# says so)
	CEMBED_WARM="" LLAMA_CHECK=1
	[ "${len%%:*}" -lt 4096 ] || CEMBED_WARM="--warmup 0" LLAMA_CHECK=0
	run_peers "$d" "$ids" "$pool"
	$PY "$P/table.py" "$R" "$name$tag" "$dims" | tee "$R/table.md"
}

setup
RESULTS=$WORK/results/$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RESULTS"
{
	echo "cembed arch bench $(date -u +%FT%TZ), $THREADS threads, $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"
	echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs;" \
		"$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_.*)$' | tr '\n' ' ')"
	echo "llama.cpp $(cat "$LLAMA_SRC/COMMIT" 2>/dev/null || echo unknown); onnxruntime-node" \
		"$(node -p "require('$BENCH_PEERS_NODE/node_modules/onnxruntime-node/package.json').version")"
} | tee "$RESULTS/header.txt"
for name in "${MODELS[@]}"; do
	prepare "$name"
	if [ $MAIN = 1 ]; then bench_one "$name" "" "$N" "$LEN"; fi
	if [ $LONG = 1 ] && [ "$(grep -o '"max_seq_length": *[0-9]*' "$WORK/$name/model/sentence_bert_config.json" | grep -o '[0-9]*$')" -ge "$LONG_LEN" ]; then
		bench_one "$name" "@$LONG_LEN" "$LONG_N" "$LONG_LEN:$LONG_LEN"
	fi
done
echo "results in $RESULTS" >&2
