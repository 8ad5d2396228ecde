#!/bin/sh
# Builds llama.cpp's CPU library (libllama + ggml) outside this repository so
# that tests/oracle/llamacpp/embed_ids.c can run llama.cpp as a second,
# independent oracle for the encoder architectures.  Nothing from llama.cpp is
# committed here: this script exports a checkout from a llama.cpp git dir
# (e.g. the one the `fetch` tool gives, /work/.mirror/ggerganov+llama.cpp/repo)
# and runs cmake on it.
#
# usage: build.sh LLAMA_GIT_DIR [SRC_DIR] [BUILD_DIR]
#   SRC_DIR   where the tree is exported   (default /work/llama.cpp-src)
#   BUILD_DIR where cmake builds           (default /work/llama.cpp-build)
# Afterwards: BUILD_DIR/bin/embed_ids, SRC_DIR/gguf-py, SRC_DIR/COMMIT, SRC_DIR/ORIGIN.
#
# ERF_GELU=1 also builds a diagnostic libggml-cpu.so in BUILD_DIR-erfgelu/bin
# whose GELU is the exact erf form (stock ggml: tanh approximation through an
# fp16 lookup table).  Running with LD_LIBRARY_PATH=BUILD_DIR-erfgelu/bin
# shows how much of a mismatch is that approximation and nothing else.
set -eu
git_dir=$1
src=${2:-/work/llama.cpp-src}
build=${3:-/work/llama.cpp-build}
here=$(cd "$(dirname "$0")" && pwd)

commit=$(git --git-dir="$git_dir" rev-parse HEAD)
if [ ! -f "$src/COMMIT" ] || [ "$(cat "$src/COMMIT")" != "$commit" ]; then
	rm -rf "$src"
	mkdir -p "$src"
	# models/ holds large vocab GGUFs a shallow snapshot may lack; not needed
	git --git-dir="$git_dir" archive HEAD -- . ':(exclude)models' | tar -x -C "$src"
	echo "$commit" > "$src/COMMIT"
fi
# which repository the tree came from (the mirror path names it: owner+name)
basename "$(dirname "$(cd "$git_dir" && pwd)")" | tr + / > "$src/ORIGIN"

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
	-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_COMMON=OFF
cmake --build "$build" -j"${JOBS:-2}" --target llama

mkdir -p "$build/bin"
api=
grep -q llama_memory_clear "$src/include/llama.h" && api="$api -DEMBED_MEMORY_API"
grep -q llama_model_n_cls_out "$src/include/llama.h" && api="$api -DEMBED_CLS_OUT"
grep -q flash_attn_type "$src/include/llama.h" && api="$api -DEMBED_FLASH_ATTN_TYPE"
# shellcheck disable=SC2086
cc -O2 -Wall $api -o "$build/bin/embed_ids" "$here/embed_ids.c" \
	-I"$src/include" -I"$src/ggml/include" \
	-L"$build/bin" -Wl,-rpath,"$build/bin" -lllama -lggml -lggml-base -lm
echo "built llama.cpp $commit -> $build/bin/embed_ids"

if [ "${ERF_GELU:-0}" = 1 ]; then
	diag=$build-erfgelu
	rm -rf "$diag/src"
	mkdir -p "$diag"
	cp -r "$src" "$diag/src"
	# the GELU lives in ggml-cpu.c (2025-02) or ggml-cpu/vec.h (later)
	f=$(grep -l '^#define GGML_GELU_FP16$' "$diag"/src/ggml/src/ggml-cpu/ggml-cpu.c \
		"$diag"/src/ggml/src/ggml-cpu/vec.h 2>/dev/null | head -n 1)
	sed -i -e 's|^#define GGML_GELU_FP16$|/* erf-gelu diagnostic: no fp16 table */|' \
		-e 's|return 0.5f\*x\*(1.0f + tanhf(SQRT_2_OVER_PI\*x\*(1.0f + GELU_COEF_A\*x\*x)));|return 0.5f*x*(1.0f + erff(x*0.70710678118654752f));|' "$f"
	grep -q 'erff(x\*0.7071' "$f" || { echo "erf-gelu patch did not apply" >&2; exit 1; }
	cmake -S "$diag/src" -B "$diag" -DCMAKE_BUILD_TYPE=Release \
		-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
	cmake --build "$diag" -j"${JOBS:-2}" --target ggml-cpu
	echo "diagnostic erf-GELU libggml-cpu.so in $diag/bin"
fi
