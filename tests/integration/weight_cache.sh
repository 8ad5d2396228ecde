#!/usr/bin/env bash
# The cache of prepared weights through the command line: `cembed embed`
# twice writes one file and the second run (which maps it) gives the same
# vectors, bit for bit, as the first and as a run without the cache;
# another precision writes a file of its own; `off` writes nothing.
# usage: weight_cache.sh CEMBED MODEL_DIR TMPDIR
set -u
cembed=$1 model=$2 tmp=$3/weight-cache
rm -rf "$tmp"; mkdir -p "$tmp"
fails=0
printf '%s\n' '"def f(): pass"' '{"id": "b", "text": "int main(void) { return 0; }"}' >"$tmp/in.jsonl"
files() { find "$tmp/w" -name '*.wcache' 2>/dev/null | wc -l; }
run() { # precision cache out
  EMBEDDING_WEIGHT_CACHE=$2 timeout 60 "$cembed" embed --model "$model" --precision "$1" --no-cache "$tmp/in.jsonl" \
    >"$3" 2>"$3.err" || { echo "FAIL $1 $2: exit $?: $(tail -2 "$3.err")"; fails=$((fails + 1)); }
}
check() { # what condition
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
for p in int8 fp32; do
  run $p off "$tmp/$p.none"
  check "$p: off writes nothing" '[ "$(files)" -eq 0 ]'
  run $p "$tmp/w" "$tmp/$p.cold"
  n=$(files)
  run $p "$tmp/w" "$tmp/$p.warm"
  check "$p: one file more after two runs ($n, then $(files))" '[ "$(files)" -eq "$n" ] && [ "$n" -ge 1 ]'
  check "$p: cold = none" 'cmp -s "$tmp/$p.none" "$tmp/$p.cold"'
  check "$p: warm = none" 'cmp -s "$tmp/$p.none" "$tmp/$p.warm"'
  check "$p: no sanitizer report" '! grep -q "Sanitizer\|runtime error" "$tmp/$p.cold.err" "$tmp/$p.warm.err"'
  mv "$tmp/w" "$tmp/w.$p"   # the next precision starts from an empty folder
done
# a truncated file is ignored and replaced
mv "$tmp/w.int8" "$tmp/w"
f=$(find "$tmp/w" -name '*.wcache' | head -1)
head -c 5000 "$f" >"$f.cut" && mv "$f.cut" "$f"
run int8 "$tmp/w" "$tmp/int8.cut"
check "int8: a truncated file is replaced, same vectors" 'cmp -s "$tmp/int8.none" "$tmp/int8.cut" && [ "$(stat -c %s "$f")" -gt 5000 ]'
# an unusable folder: a warning, the same vectors
run int8 "$tmp/in.jsonl/below" "$tmp/int8.bad"
check "int8: an unusable folder warns and runs" 'cmp -s "$tmp/int8.none" "$tmp/int8.bad" && grep -q "weight cache" "$tmp/int8.bad.err"'
# two first starts at once: each writes its own temporary file, one rename wins, both embed the same
rm -rf "$tmp/w2"
run int8 "$tmp/w2" "$tmp/int8.p1" & run int8 "$tmp/w2" "$tmp/int8.p2" & wait
check "int8: two writers at once: one file, no temporary left, same vectors" \
  '[ "$(find "$tmp/w2" -type f | wc -l)" -eq 1 ] && cmp -s "$tmp/int8.none" "$tmp/int8.p1" && cmp -s "$tmp/int8.none" "$tmp/int8.p2"'
rm -rf "$tmp"
[ $fails -eq 0 ]
