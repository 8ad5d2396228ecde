#!/usr/bin/env bash
# A numpy-sized tree through `cembed embed`: the first run (cold cache), a
# second run over the unchanged tree, and a run after editing one file.
# Reports wall time, peak RSS (from /usr/bin/time) and the chunk counts of
# each run. Measures; asserts nothing.
#
# usage: bench/tree.sh [CEMBED] [MODEL] [WORK_DIR]
# The cold run's tokens/s (whole process) is printed next to that of
# `cembed embed --no-cache` over 1,000 code chunks as JSON lines (TEXTS,
# default the peer harness's /tmp/bench-peers/texts.jsonl, when present)
# in the same invocation: the difference is what walking, reading,
# chunking, hashing and the cache cost (issue 21: at most 5%).
# The tree is a copy of this machine's numpy package (/usr/lib/python3/dist-
# packages/numpy: about 800 text files, 330k lines) and Python's standard
# library (/usr/lib/python3.*: about 670 files, 300k lines); override with
# TREE_SOURCES="dir1 dir2".
set -euo pipefail
cembed=${1:-build/cembed}
model=${2:-${XDG_DATA_HOME:-$HOME/.local/share}/cembed/models/all-MiniLM-L6-v2}
work=${3:-$(mktemp -d /tmp/cembed-tree-bench.XXXXXX)}
sources=${TREE_SOURCES:-"/usr/lib/python3/dist-packages/numpy $(ls -d /usr/lib/python3.[0-9]* | head -1)"}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (CEMBED_BENCH_DEPS=1 scripts/install-deps.sh)"; exit 1; }

tree="$work/tree"
rm -rf "$tree" "$work"/cache.sqlite*
mkdir -p "$tree"
for s in $sources; do cp -r "$s" "$tree/"; done
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
files=$("$cembed" embed --list-files "$tree" 2>/dev/null | wc -l)
lines=$("$cembed" embed --list-files "$tree" 2>/dev/null | xargs -d '\n' grep -Il . | xargs -d '\n' cat | wc -l)
echo "tree: $files files listed, $lines lines of text ($sources)"

run() { # label
  /usr/bin/time -f "%e %M" -o "$work/time" env EMBEDDING_CACHE="$work/cache.sqlite" CEMBED_NO_PROGRESS=1 \
    "$cembed" embed --model "$model" "$tree" -o "$work/out-$1.jsonl" 2>"$work/log-$1"
  read -r secs kb <"$work/time"
  local summary
  summary=$(grep -o 'chunks: .*' "$work/log-$1" | head -1)
  printf '%-8s %8.1f s  peak RSS %6.1f MiB  %s\n' "$1" "$secs" "$(python3 -c "print($kb / 1024)")" "$summary"
  echo "$secs" >"$work/secs-$1"
}

run first
tokens=$(grep -o 'chunks: .*' "$work/log-first" | grep -o '[0-9]* tokens in' | grep -o '^[0-9]*')
tree_rate=$(python3 -c "print(round($tokens / $(cat "$work/secs-first")))")
echo "first run: $tokens tokens, $tree_rate tokens/s (whole process)"
texts=${TEXTS:-/tmp/bench-peers/texts.jsonl}
if [ -f "$texts" ]; then
  head -1000 "$texts" >"$work/chunks1000.jsonl"
  /usr/bin/time -f "%e %M" -o "$work/time" env CEMBED_NO_PROGRESS=1 \
    "$cembed" embed --model "$model" --no-cache "$work/chunks1000.jsonl" -o /dev/null 2>"$work/log-chunks"
  read -r secs kb <"$work/time"
  ctokens=$(grep -o 'embedded [0-9]* texts ([0-9]* tokens' "$work/log-chunks" | grep -o '([0-9]*' | tr -d '(')
  chunk_rate=$(python3 -c "print(round($ctokens / $secs))")
  echo "1,000 chunks of $texts: $ctokens tokens in $secs s, $chunk_rate tokens/s, peak RSS $((kb / 1024)) MiB;" \
    "the tree's cold run is $(python3 -c "print(round($tree_rate / $chunk_rate, 3))")x that"
fi
run second
# edit one file in its middle
victim=$(grep -o '"path":"[^"]*"' "$work/out-first.jsonl" | sort -u | awk 'NR <= 100' | tail -1 | cut -d'"' -f4)
python3 - "$victim" <<'EOF'
import sys
p = sys.argv[1]
lines = open(p, encoding="utf-8").read().split("\n")
lines[len(lines) // 2] += "  # edited by bench/tree.sh"
open(p, "w", encoding="utf-8").write("\n".join(lines))
EOF
echo "edited: $victim ($(grep -c "\"path\":\"$victim\"" "$work/out-first.jsonl") chunks)"
run edited
echo "second run speed-up: $(python3 -c "print(round($(cat "$work/secs-first") / $(cat "$work/secs-second"), 1))")x"
"$cembed" cache stats --cache "$work/cache.sqlite"
