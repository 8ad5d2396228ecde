#!/bin/bash
# bench/long_budget.sh: one long sequence through `cembed serve` under a set
# memory budget, and the process's peak RSS against that budget and against
# the plan (issue 19: 32k tokens through a 0.6B model must not exceed the
# budget; peak RSS at int8 <= 1.3 x (int8 weights + the plan's workspace)).
#
# It starts serve on MODEL with EMBEDDING_MEMORY_LIMIT=LIMIT (the budget is
# EMBEDDING_MAX_MEMORY_PERCENT, 70%, of it), EMBEDDING_MAX_BATCH_TOKENS=TOKENS
# (the default 16,384 caps one forward pass) and --max-seq-len TOKENS (the
# plan counts one sequence of the model's limit), the cache off; writes a text of
# TOKENS words of the model's vocabulary (make_models' WordPiece vocab of
# tokNNN words: one token each; with the template's specials the input is
# truncated to exactly TOKENS),
# checks its length with /tokenize, POSTs it to /embed once, and prints:
# the start's memory plan line, VmRSS after the start (the fixed part), the
# request's seconds and tokens/s, VmHWM (peak RSS) after it, the budget, the
# int8 weight bytes of the checkpoint's matrices (1 byte a weight + one fp32
# scale a row; embeddings, norms and biases as stored: bf16 or fp32), and
# the ratio of the peak to (int8 weights + the plan's batch workspace), the
# issue's bar being 1.3; also against the matrices alone (the embedding
# table's rows are read from the map as texts use them, so its stored size
# is an upper bound of what it adds).
#
# usage: bench/long_budget.sh MODEL_DIR [TOKENS (32768)] [LIMIT_BYTES (6 GiB)] [PRECISION (int8)]
# Environment: CEMBED (build/cembed), PORT (18931), THREADS (2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=${1:?model dir}
TOKENS=${2:-32768}
LIMIT=${3:-$((6 << 30))}
PREC=${4:-int8}
CEMBED=${CEMBED:-$ROOT/build/cembed}
PORT=${PORT:-18931}
W=$(mktemp -d /tmp/long_budget.XXXXXX)
/usr/bin/python3 - "$M" "$TOKENS" "$W/body.json" <<'EOF'
import json, random, sys
m, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
words = [w.strip() for w in open(m + "/vocab.txt") if w.startswith("tok")]
rng = random.Random(0)
json.dump({"inputs": " ".join(rng.choice(words) for _ in range(n))}, open(out, "w"))
EOF
EMBEDDING_MEMORY_LIMIT=$LIMIT EMBEDDING_MAX_BATCH_TOKENS=$TOKENS EMBEDDING_CACHE=off \
	"$CEMBED" serve --model "$M" --max-seq-len "$TOKENS" --precision "$PREC" --threads "${THREADS:-2}" --port "$PORT" >"$W/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
	curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
	kill -0 $PID 2>/dev/null || { cat "$W/serve.log"; exit 1; }
	sleep 0.5
done
rss() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$PID/status; }
echo "load $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'memory plan' "$W/serve.log" | sed 's/^.*memory plan/memory plan/')"
echo "rss after start: $(( $(rss VmRSS) / 1024 )) MiB (peak so far $(( $(rss VmHWM) / 1024 )) MiB)"
curl -sf "http://127.0.0.1:$PORT/tokenize" -H 'Content-Type: application/json' --data-binary @"$W/body.json" |
	/usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print("tokens:", len(r["ids"]), "truncated:", r["truncated"], "first/last ids:", r["ids"][0], r["ids"][-1])'
t0=$(date +%s.%N)
code=$(curl -s -o "$W/out.json" -w '%{http_code}' "http://127.0.0.1:$PORT/embed" -H 'Content-Type: application/json' \
	--data-binary @"$W/body.json")
t1=$(date +%s.%N)
peak=$(( $(rss VmHWM) / 1024 ))
echo "embed: HTTP $code, $(head -c 120 "$W/out.json" | tr -d '\n')..."
/usr/bin/python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print('seconds %.1f, tokens/s %.1f' % (t, int(sys.argv[3]) / t))" "$t0" "$t1" "$TOKENS"
budget=$(( LIMIT * ${EMBEDDING_MAX_MEMORY_PERCENT:-70} / 100 / 1048576 ))
echo "peak RSS (VmHWM) $peak MiB; budget $budget MiB ($(( LIMIT >> 20 )) MiB x ${EMBEDDING_MAX_MEMORY_PERCENT:-70}%): $([ "$peak" -le "$budget" ] && echo within || echo OVER)"
ws=$(grep -m1 'memory plan' "$W/serve.log" | sed -n 's/.* \([0-9.]*\) MB batch workspace.*/\1/p')
/usr/bin/python3 - "$M" "$peak" "${ws:-0}" <<'EOF'
import json, struct, sys
m, peak, ws = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(m + "/model.safetensors", "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
size = {"F32": 4, "BF16": 2, "F16": 2}
q = other = 0
for k, v in h.items():
    if k == "__metadata__":
        continue
    n = 1
    for d in v["shape"]:
        n *= d
    if len(v["shape"]) == 2 and "embed" not in k:
        q += n + 4 * v["shape"][0]
    else:
        other += n * size[v["dtype"]]
print("int8 weights: matrices %.1f MiB + embeddings/norms as stored %.1f MiB = %.1f MiB"
      % (q / 2**20, other / 2**20, (q + other) / 2**20))
w = (q + other) / 2**20
print("peak RSS %d MiB / (int8 weights %.1f MiB + plan's batch workspace %.1f MiB) = %.2fx (bar 1.3x); "
      "/ (matrices only %.1f MiB + workspace) = %.2fx" % (peak, w, ws, peak / (w + ws), q / 2**20, peak / (q / 2**20 + ws)))
EOF
grep -i 'memory\|batch\|error\|refus' "$W/serve.log" | tail -8
rm -rf "$W"
