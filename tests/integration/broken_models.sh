#!/usr/bin/env bash
# Broken model directories must give a clear error (exit 1, a message that
# names the file and the problem) and never crash (no signal, no sanitizer
# report). usage: broken_models.sh CEMBED GOOD_MODEL_DIR TMPDIR
set -u
cembed=$1 good=$2 tmp=$3/broken
rm -rf "$tmp"; mkdir -p "$tmp"
fails=0

expect_error() { # name dir pattern (a copy under $tmp is removed after: each holds the model's weights)
  local name=$1 dir=$2 pattern=$3 out rc
  out=$(timeout 30 "$cembed" info --model "$dir" 2>&1); rc=$?
  case $dir in "$tmp"/?*) rm -rf "$dir" ;; esac
  if [ $rc -ne 1 ] || ! grep -q -- "$pattern" <<<"$out" || grep -q "Sanitizer\|runtime error" <<<"$out"; then
    echo "FAIL $name: exit $rc, output: $out"; fails=$((fails + 1))
  else
    echo "ok   $name: $(tail -1 <<<"$out" | cut -c1-150)"
  fi
}

copy() { rm -rf "$tmp/$1"; mkdir -p "$tmp/$1"; cp -r "$good"/. "$tmp/$1/"; }
st="$good/model.safetensors"
hlen=$(python3 -c "import struct,sys;print(struct.unpack('<Q',open(sys.argv[1],'rb').read(8))[0])" "$st")

copy truncated;  head -c 1000000 "$st" > "$tmp/truncated/model.safetensors"
expect_error truncated "$tmp/truncated" "outside the data"

copy tiny-file;  printf 'abc' > "$tmp/tiny-file/model.safetensors"
expect_error tiny-file "$tmp/tiny-file" "too short"

copy header-len; python3 - "$st" "$tmp/header-len/model.safetensors" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(d) * 2) + d[8:])
PY
expect_error header-len "$tmp/header-len" "header length"

# lying offsets / wrong shapes / missing tensors: rewrite the JSON header
edit_header() { # dir python-expression-on-h
  python3 - "$st" "$tmp/$1/model.safetensors" "$2" <<'PY'
import json, struct, sys
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[:8])[0]
h = json.loads(d[8:8 + n])
exec(sys.argv[3])
raw = json.dumps(h).encode()
raw += b' ' * (-len(raw) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(raw)) + raw + d[8 + n:])
PY
}
copy lying-offset; edit_header lying-offset "h['encoder.layer.0.output.dense.bias']['data_offsets'][1] += 4"
expect_error lying-offset "$tmp/lying-offset" "encoder.layer.0.output.dense.bias"
copy past-end; edit_header past-end "t=h['encoder.layer.5.output.LayerNorm.bias']; t['data_offsets']=[t['data_offsets'][0]+10**9, t['data_offsets'][1]+10**9]"
expect_error past-end "$tmp/past-end" "outside the data"
copy overlap; edit_header overlap "h['encoder.layer.1.attention.self.key.bias']['data_offsets'] = h['encoder.layer.1.attention.self.query.bias']['data_offsets']"
expect_error overlap "$tmp/overlap" "overlap"
copy wrong-shape; edit_header wrong-shape "t=h['encoder.layer.2.intermediate.dense.weight']; t['shape']=[384,1536]"
expect_error wrong-shape "$tmp/wrong-shape" "has shape \[384, 1536\]"
copy missing; edit_header missing "del h['encoder.layer.3.attention.output.LayerNorm.weight']"
expect_error missing "$tmp/missing" "missing tensor \"encoder.layer.3.attention.output.LayerNorm.weight\""
copy bad-dtype; edit_header bad-dtype "h['embeddings.LayerNorm.bias']['dtype']='I32'"
expect_error bad-dtype "$tmp/bad-dtype" "is I32"
copy garbage-header; python3 - "$st" "$tmp/garbage-header/model.safetensors" "$hlen" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[8:8 + 40] = b'{"x": [[[[[ not json at all !!!!!!!!!!!'
open(sys.argv[2], 'wb').write(d)
PY
expect_error garbage-header "$tmp/garbage-header" "not valid JSON"

copy config-garbage; printf '{"hidden_size": 384,,}' > "$tmp/config-garbage/config.json"
expect_error config-garbage "$tmp/config-garbage" "config.json: not valid JSON"
copy config-mismatch; sed -i 's/"num_attention_heads": 12/"num_attention_heads": 7/' "$tmp/config-mismatch/config.json"
expect_error config-mismatch "$tmp/config-mismatch" "not a multiple"
copy no-config; rm "$tmp/no-config/config.json"
expect_error no-config "$tmp/no-config" "no config.json"
copy tok-garbage; printf '{"model": {"vocab": ' > "$tmp/tok-garbage/tokenizer.json"
expect_error tok-garbage "$tmp/tok-garbage" "tokenizer.json: not valid JSON"
copy tok-none; rm "$tmp/tok-none/tokenizer.json"
expect_error tok-none "$tmp/tok-none" "neither tokenizer.json nor vocab.txt"
copy pooling-max; printf '{"pooling_mode_max_tokens": true}' > "$tmp/pooling-max/1_Pooling/config.json"
expect_error pooling-max "$tmp/pooling-max" "pooling_mode_max_tokens"
expect_error no-dir "$tmp/does-not-exist" "no such folder"
mkdir -p "$tmp/empty-dir"
expect_error empty-dir "$tmp/empty-dir" "no config.json"

# a FIFO in place of a model file is refused at once, naming the file (it hung, waiting for a writer)
for f in model.safetensors config.json tokenizer.json modules.json 1_Pooling/config.json; do
  n=fifo-${f//\//-}; copy "$n"; rm -f "$tmp/$n/$f"; mkfifo "$tmp/$n/$f"
  expect_error "$n" "$tmp/$n" "$f: a FIFO, not a regular file"
done
# modules.json may not send the loader outside the model folder
for p in ../../outside /etc 1_Pooling/../../x; do
  copy modules-escape; python3 - "$tmp/modules-escape/modules.json" "$p" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for x in m:
    if x["type"].endswith("Pooling"):
        x["path"] = sys.argv[2]
json.dump(m, open(sys.argv[1], "w"))
PY
  expect_error "modules.json path $p" "$tmp/modules-escape" "leaves the model folder"
done

# odd but loadable: tensors the config does not name (a bias in one layer of a ModernBERT whose config
# says none; a q_norm in one layer of a Qwen2) are used or ignored, never a crash or a hang
root=$(cd "$(dirname "$0")/../.." && pwd)
odd_model() { # name source-folder tensor-name rows
  rm -rf "$tmp/$1"; cp -r "$root/tests/golden/arch/$2" "$tmp/$1"
  python3 - "$tmp/$1/model.safetensors" "$3" "$4" <<'PY'
import json, struct, sys
path, name, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = open(path, 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); data = f.read(); f.close()
extra = struct.pack('<f', 0.5) * rows
h[name] = {'dtype': 'F32', 'shape': [rows], 'data_offsets': [len(data), len(data) + len(extra)]}
hb = json.dumps(h).encode(); hb += b' ' * ((8 - len(hb) % 8) % 8)
open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + data + extra)
PY
  local out rc
  out=$(printf '{"text": "tok5 tok6 tok7"}\n' | timeout 30 "$cembed" embed --model "$tmp/$1" - 2>&1); rc=$?
  rm -rf "$tmp/$1"
  if [ $rc -ne 0 ] || ! grep -q '"embedding":\[' <<<"$out" || grep -q "Sanitizer\|runtime error\|nan" <<<"$out"; then
    echo "FAIL $1: exit $rc, output: $(tail -c 300 <<<"$out")"; fails=$((fails + 1))
  else
    echo "ok   $1: embedded, no crash or hang"
  fi
}
odd_model stray-bias modernbert-embed layers.1.mlp.Wi.bias 192
odd_model stray-qnorm qwen2-coder model.layers.1.self_attn.q_norm.weight 16

rm -rf "$tmp"
echo "$fails broken-model checks failed"
[ $fails -eq 0 ]
