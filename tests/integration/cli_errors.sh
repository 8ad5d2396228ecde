#!/usr/bin/env bash
# Bad input to the command line: errors name the file, line and cause; exit
# codes are 1 (bad data) or 2 (bad usage); nothing crashes.
# usage: cli_errors.sh CEMBED MODEL TMPDIR
set -u
cembed=$1 model=$2 tmp=$3/cli
rm -rf "$tmp"; mkdir -p "$tmp"
fails=0
expect() { # name want_rc pattern cmd...
  local name=$1 want=$2 pattern=$3 out rc; shift 3
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne "$want" ] || ! grep -q -- "$pattern" <<<"$out" || grep -q "Sanitizer\|runtime error" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), stderr: $out"; fails=$((fails + 1))
  else
    echo "ok   $name: $(grep -- "$pattern" <<<"$out" | head -1 | cut -c1-150)"
  fi
}
printf '{"id": 1, "text": "fine"}\n{"id": 2, "text": "broken\n' > "$tmp/trunc.jsonl"
expect truncated-json 1 "trunc.jsonl:2: not valid JSON" "$cembed" embed --model "$model" "$tmp/trunc.jsonl"
printf '{"id": 1, "text": 42}\n' > "$tmp/type.jsonl"
printf '{"id": 1, "text": "fine"}\n' > "$tmp/ok.jsonl"
expect wrong-type 1 "type.jsonl:1: \"text\" must be a string" "$cembed" embed --model "$model" "$tmp/type.jsonl"
printf '\n\n{"id": 1}\n' > "$tmp/missing.jsonl"
expect missing-text 1 "missing.jsonl:3: missing \"text\"" "$cembed" tokenize --model "$model" "$tmp/missing.jsonl"
python3 -c "print('['*5000 + ']'*5000)" > "$tmp/deep.jsonl"
expect deep-nesting 1 "deep.jsonl:1: JSON nested deeper than 64" "$cembed" embed --model "$model" "$tmp/deep.jsonl"
expect no-file 1 "nope.jsonl: No such file" "$cembed" embed --model "$model" "$tmp/nope.jsonl"
expect bad-batch 2 "--batch-size needs an integer in \[1, 4096\]" "$cembed" embed --model "$model" --batch-size 0 "$tmp/type.jsonl"
expect bad-threads 2 "--threads needs an integer" "$cembed" embed --model "$model" --threads abc "$tmp/type.jsonl"
expect bad-env 2 "EMBEDDING_THREADS=lots" env EMBEDDING_THREADS=lots "$cembed" embed --model "$model" "$tmp/type.jsonl"
expect unknown-cmd 2 "unknown command" "$cembed" frobnicate
expect bad-gemm 2 "EMBEDDING_GEMM=fast: must be one of auto, onednn" env EMBEDDING_GEMM=fast "$cembed" embed --model "$model" "$tmp/type.jsonl"
expect two-models 1 "only serve takes several" "$cembed" embed --model "$model" --model "$model" "$tmp/type.jsonl"
expect pull-usage 2 "usage: cembed pull ORG/NAME" "$cembed" pull
expect pull-not-an-id 2 "usage: cembed pull ORG/NAME" "$cembed" pull "../etc/passwd"
expect bad-endpoint 2 "HF_ENDPOINT=ftp://x: must be an http" env HF_ENDPOINT=ftp://x "$cembed" pull a/b
expect key-file-missing 2 "API key file $tmp/no-keys" "$cembed" serve --model "$model" --api-key-file "$tmp/no-keys"
expect bad-key 2 "a key is 1 to 512 printable" env EMBEDDING_API_KEY="$(printf 'a\001b')" "$cembed" serve --model "$model"
expect bad-metrics-auth 2 "EMBEDDING_METRICS_AUTH=maybe" env EMBEDDING_METRICS_AUTH=maybe "$cembed" serve --model "$model"
if [ "$("$cembed" --version)" = "cembed $(sed -n 's/^#define CEMBED_VERSION "\(.*\)"/\1/p' include/cembed.h)" ]; then
  echo "ok   --version prints the release"
else
  echo "FAIL --version: $("$cembed" --version 2>&1)"; fails=$((fails + 1))
fi
expect unknown-flag 2 "unknown flag --fast" "$cembed" embed --fast x
# invalid UTF-8 and an empty text are embedded, not refused
printf '{"id": "u", "text": "caf\xff\xfe"}\n{"id": "e", "text": ""}\n"bare string"\n' > "$tmp/odd.jsonl"
out=$("$cembed" embed --model "$model" "$tmp/odd.jsonl" 2>/dev/null)
if [ "$(grep -c '"embedding":\[' <<<"$out")" = 3 ] && grep -q '^{"id":2,' <<<"$out"; then
  echo "ok   odd-but-valid input embedded (3 vectors, bare string got id 2)"
else
  echo "FAIL odd-but-valid input: $out" | cut -c1-300; fails=$((fails + 1))
fi
# stdin works and order is kept
out=$(printf '"a"\n"b b b b b b b b"\n"c"\n' | "$cembed" embed --model "$model" - 2>/dev/null | cut -c1-8 | tr '\n' ' ')
if [ "$out" = '{"id":0, {"id":1, {"id":2, ' ]; then echo "ok   stdin, input order kept"; else echo "FAIL stdin order: $out"; fails=$((fails + 1)); fi
# output that cannot be written (a full disk) is an error with its cause, exit 1 (it was exit 0, or 1 silently)
full() { # name cmd...: stdout to /dev/full
  local name=$1 out rc; shift
  out=$("$@" 2>&1 >/dev/full); rc=$?
  if [ $rc -eq 1 ] && grep -q "No space left on device" <<<"$out" && [ "$(grep -c "No space left" <<<"$out")" = 1 ]; then
    echo "ok   $name > /dev/full: exit 1, $(tail -1 <<<"$out" | cut -c1-80)"
  else
    echo "FAIL $name > /dev/full: exit $rc: $out" | cut -c1-300; fails=$((fails + 1))
  fi
}
full --version "$cembed" --version
full info "$cembed" info --model "$model"
full "cache stats" "$cembed" cache stats --cache "$tmp/stats.sqlite"
mkdir -p "$tmp/tree"; echo "x = 1" > "$tmp/tree/a.py"
full "embed --list-files" "$cembed" embed --list-files "$tmp/tree"
full "embed (JSON lines)" env EMBEDDING_CACHE=off "$cembed" embed --model "$model" "$tmp/ok.jsonl"
# a corrupt cache that cannot be set aside: the message is built once (it was formatted into itself)
long="$tmp/$(printf 'c%.0s' $(seq 245))"
echo "not a database, not at all, garbage garbage garbage garbage garbage" > "$long"
out=$("$cembed" cache stats --cache "$long" 2>&1 >/dev/null); rc=$?
if [ $rc -eq 1 ] && grep -q "file is not a database (corrupt); it cannot be set aside as .*: File name too long" <<<"$out" &&
   [ "$(grep -o "is not a database" <<<"$out" | wc -l)" = 1 ]; then
  echo "ok   corrupt cache that cannot be renamed: one message, read once"
else
  echo "FAIL corrupt cache message: exit $rc: $out" | cut -c1-400; fails=$((fails + 1))
fi
# embed DIR: a file that cannot be read is counted as unreadable, not as embedded (it was both)
mkdir -p "$tmp/unread"; echo "def f(): pass" > "$tmp/unread/a.py"; echo "x = 2" > "$tmp/unread/b.py"
chmod 000 "$tmp/unread/b.py"; chmod -R a+rX "$tmp/unread"; chmod 000 "$tmp/unread/b.py"
as_user=()   # root reads any file: the check runs as nobody then
if [ "$(id -u)" = 0 ]; then as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
abs_cembed="$(cd "$(dirname "$cembed")" && pwd)/$(basename "$cembed")" abs_model=$(cd "$model" && pwd)
abs_tree=$(cd "$tmp/unread" && pwd)
out=$(cd / && "${as_user[@]}" env EMBEDDING_CACHE=off HOME=/tmp "$abs_cembed" embed --model "$abs_model" "$abs_tree" \
      2>&1 >/dev/null)
if grep -q "skipping .*b.py: cannot read it" <<<"$out" && grep -q "files: 1 embedded, 1 skipped (.* 1 unreadable" <<<"$out"; then
  echo "ok   embed DIR: an unreadable file is named and counted as unreadable, not embedded"
else
  echo "FAIL embed DIR with an unreadable file: $out" | cut -c1-400; fails=$((fails + 1))
fi
# the installed fetch-model.sh (PREFIX/share/cembed) finds PREFIX/bin/cembed without it on PATH, and says
# how to point at cembed when there is none (it said "PREFIX/share/build/cembed is missing: run make first")
if [ -f scripts/fetch-model.sh ]; then
  fm=$tmp/prefix; mkdir -p "$fm/share/cembed" "$fm/bin"; cp scripts/fetch-model.sh "$fm/share/cembed/"
  ln -s "$abs_cembed" "$fm/bin/cembed"
  out=$(env -u CEMBED PATH=/usr/bin:/bin "$fm/share/cembed/fetch-model.sh" --from "$tmp/no-such" "$tmp/fm-dest" 2>&1)
  rm "$fm/bin/cembed"
  out2=$(env -u CEMBED PATH=/usr/bin:/bin "$fm/share/cembed/fetch-model.sh" --from "$tmp/no-such" "$tmp/fm-dest" 2>&1)
  if ! grep -q "not found\|missing" <<<"$out" && grep -q "no-such" <<<"$out" && grep -q "cembed is not found.*CEMBED=" <<<"$out2"; then
    echo "ok   installed fetch-model.sh: PREFIX/bin/cembed found off PATH; none: says PATH or CEMBED"
  else
    echo "FAIL installed fetch-model.sh: with bin: $out / without: $out2" | cut -c1-400; fails=$((fails + 1))
  fi
fi
# every command has --help (and cembed help CMD) listing every flag its parser takes and the variables
# that set them; the top-level help names the flags it missed (run from the repository root)
helps_have() { # source-file pattern command...: every match of pattern in the source is in one of the helps
  local src=$1 pat=$2 text="" missing=""; shift 2
  for c in "$@"; do text+=$("$cembed" "$c" --help 2>&1); text+=$("$cembed" help "$c" 2>&1); done
  for f in $(grep -o "$pat" "$src" | tr -d '"(' | sed 's/^getenv//; s/^cli_env_long//' | sort -u); do
    [ "$f" = "--" ] || [ "$f" = "EMBEDDING_ONNX_THREADS" ] || grep -q -- "$f" <<<"$text" || missing+=" $f"
  done
  if [ -z "$missing" ]; then echo "ok   help of $*: every flag and variable of $(basename "$src")"
  else echo "FAIL help of $*: missing$missing"; fails=$((fails + 1)); fi
}
if [ -f app/cmd_embed.c ]; then
  helps_have app/cmd_embed.c '"-[-a-z]*"' embed tokenize
  helps_have app/cmd_embed.c 'EMBEDDING_[A-Z_]*' embed
  helps_have app/cmd_serve.c '"--[a-z-]*"' serve
  helps_have app/cmd_serve.c 'EMBEDDING_[A-Z_]*' serve
  helps_have app/runtime.c 'EMBEDDING_[A-Z_]*' serve worker
  helps_have app/cmd_worker.c '"--[a-z-]*"' worker enqueue result
  helps_have app/cmd_worker.c 'EMBEDDING_[A-Z_]*' worker enqueue result
  helps_have app/cli.c '"--[a-z-]*"' info tokenize embed serve worker
  helps_have app/cli.c 'EMBEDDING_[A-Z_]*' info tokenize embed serve worker
  helps_have app/cmd_cache.c '"--[a-z-]*"' cache
  helps_have app/cmd_convert.c '"--[a-z-]*"' convert
  helps_have app/cmd_rerank.c '"--[a-z-]*"' rerank
fi
# the README's table of numbers is the options table (cembed help variables), and the parsers use its ranges
if [ -f README.md ]; then
  want=$("$cembed" help variables)
  have=$(sed -n '/^<!-- numbers: cembed help variables -->$/,/^<!-- \/numbers -->$/p' README.md | sed '1d;$d')
  if [ -n "$want" ] && [ "$want" = "$have" ]; then echo "ok   README's table of numbers = cembed help variables"
  else echo "FAIL README's table of numbers differs from cembed help variables"; fails=$((fails + 1)); fi
fi
expect table-range 2 "EMBEDDING_DRAIN_TIMEOUT=0: must be an integer in \[1, 86400\]" env EMBEDDING_DRAIN_TIMEOUT=0 "$cembed" serve --model "$model"
expect table-flag 2 "--max-deliveries needs an integer in \[1, 1000\]" "$cembed" worker --redis redis://127.0.0.1:1 --max-deliveries 0
# text, choice and boolean settings go through the same table: the variable or flag and what it takes
expect table-choice-env 2 "EMBEDDING_PRECISION=fp16: must be one of fp32, bf16, int8" env EMBEDDING_PRECISION=fp16 "$cembed" info --model "$model"
expect table-choice-flag 2 "--precision needs one of fp32, bf16, int8" "$cembed" info --model "$model" --precision fp16
expect table-choice-missing 2 "--gemm needs one of auto, onednn" "$cembed" info --model "$model" --gemm
expect table-log-level 2 "EMBEDDING_LOG_LEVEL=loud: must be one of debug, info, warning, error" env EMBEDDING_LOG_LEVEL=loud "$cembed" info --model "$model"
expect table-log-level-alias 1 "no such folder" env EMBEDDING_LOG_LEVEL=warn "$cembed" info --model "$tmp/no-model"
expect table-bool-env 2 "EMBEDDING_METRICS_AUTH=maybe: must be true or false" env EMBEDDING_METRICS_AUTH=maybe "$cembed" serve --model "$model"
expect table-alias-env 2 "EMBEDDING_ONNX_THREADS=0: must be an integer in \[1, 1024\]" env EMBEDDING_ONNX_THREADS=0 "$cembed" info --model "$model"
expect table-text-flag 2 "--redis needs redis://" "$cembed" worker --redis
expect table-text-flag-host 2 "--host needs an IPv4 address" "$cembed" serve --model "$model" --host
expect table-path-flag 2 "--cache needs a path" "$cembed" cache stats --cache
expect table-text-env 2 "http://x: a Redis URL starts with redis://" env EMBEDDING_REDIS_URL=http://x "$cembed" worker --model "$model"
top=$("$cembed" --help)
miss=""; for f in --list-files --jsonl --max-seq-len --precision --gemm; do grep -q -- "$f" <<<"$top" || miss+=" $f"; done
if [ -z "$miss" ] && "$cembed" embed --help >/dev/null && "$cembed" serve --help >/dev/null && "$cembed" pull --help >/dev/null; then
  echo "ok   cembed --help names --list-files, --jsonl, --max-seq-len, --precision, --gemm; embed/serve/pull --help exit 0"
else
  echo "FAIL top-level help: missing$miss"; fails=$((fails + 1))
fi
expect help-unknown 2 'no command "nope"' "$cembed" help nope
echo "$fails CLI checks failed"
[ $fails -eq 0 ]
