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
# Afterwards: BUILD_DIR/bin/embed_ids, SRC_DIR/gguf-py, SRC_DIR/COMMIT.
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

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
	-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
cmake --build "$build" -j"${JOBS:-2}" --target llama

mkdir -p "$build/bin"
cc -O2 -Wall -o "$build/bin/embed_ids" "$here/embed_ids.c" \
	-I"$src/include" -I"$src/ggml/include" \
	-L"$build/bin" -Wl,-rpath,"$build/bin" -lllama -lggml -lggml-base -lm
echo "built llama.cpp $commit -> $build/bin/embed_ids"
