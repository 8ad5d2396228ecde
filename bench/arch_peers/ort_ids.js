#!/usr/bin/env node
// ONNX Runtime peer of bench/arch.sh: runs an ONNX graph from export_onnx.py
// (batch 1, dynamic sequence) on every id sequence of IDS (one JSON array, or
// {"id","ids"}, per line), one sequence per session.run (no padding), and prints one JSON line
// {"tokens", "seconds", "tokens_per_s", "setup_seconds"}.
// Session options as /work/shared/bench-peers/bench_ort.js: CPU execution
// provider, intraOpNumThreads = --threads, interOpNumThreads 1, sequential,
// graphOptimizationLevel 'all'. One warm-up run (the first sequence), then
// every sequence timed (input building + run + pooling).
// --pool mean|cls|last|logits: the vector written with --out (float32 rows in file
// order; mean, cls and last (a decoder's last token) are L2-normalized, logits raw).
// Packages: onnxruntime-node from $BENCH_PEERS_NODE (npm ci of bench-peers' lock).
//
// usage: node ort_ids.js --model M.onnx --ids IDS [--threads 2] [--pool mean] [--out F.f32]
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const nodeDir = process.env.BENCH_PEERS_NODE || '/tmp/archbench/node';
const ort = createRequire(path.join(nodeDir, 'package.json'))('onnxruntime-node');

function args() {
  const a = { model: '', ids: '', threads: 2, pool: 'mean', out: '' };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a) || i + 1 >= v.length) throw new Error('bad flag ' + v[i]);
    a[k] = typeof a[k] === 'number' ? Number(v[i + 1]) : v[i + 1];
  }
  if (!a.model || !a.ids) throw new Error('need --model M.onnx --ids FILE');
  return a;
}

function pool(mode, res, n) {
  const t = res[mode === 'logits' ? 'logits' : 'last_hidden_state'];
  const d = t.data;
  if (mode === 'logits') return Float32Array.from(d);
  const H = t.dims[2];
  const acc = new Float64Array(H);
  const first = mode === 'last' ? n - 1 : 0;
  const rows = mode === 'cls' || mode === 'last' ? 1 : n;
  for (let r = first; r < first + rows; r++) for (let h = 0; h < H; h++) acc[h] += d[r * H + h];
  let nn = 0;
  for (let h = 0; h < H; h++) nn += acc[h] * acc[h];
  nn = Math.max(Math.sqrt(nn), 1e-30);
  return Float32Array.from(acc, (x) => x / nn);
}

async function main() {
  const a = args();
  const t0 = process.hrtime.bigint();
  const seqs = fs.readFileSync(a.ids, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
    .map((x) => (Array.isArray(x) ? x : x.ids));
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'], intraOpNumThreads: a.threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  async function run(s) {
    const n = s.length;
    const ids = BigInt64Array.from(s, (x) => BigInt(x));
    const ones = new BigInt64Array(n).fill(1n);
    const res = await session.run({
      input_ids: new ort.Tensor('int64', ids, [1, n]),
      attention_mask: new ort.Tensor('int64', ones, [1, n]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(n), [1, n]),
    });
    return pool(a.pool, res, n);
  }
  await run(seqs[0]);
  const t1 = process.hrtime.bigint();
  const outs = [];
  for (const s of seqs) outs.push(await run(s));
  const dt = Number(process.hrtime.bigint() - t1) / 1e9;
  if (a.out) {
    const buf = Buffer.alloc(outs.reduce((x, o) => x + o.length * 4, 0));
    let off = 0;
    for (const o of outs) { Buffer.from(o.buffer).copy(buf, off); off += o.length * 4; }
    fs.writeFileSync(a.out, buf);
  }
  const tokens = seqs.reduce((x, s) => x + s.length, 0);
  console.log(JSON.stringify({ peer: 'ort', tokens, seqs: seqs.length, seconds: dt,
    tokens_per_s: tokens / dt, setup_seconds: Number(t1 - t0) / 1e9 }));
}

main().catch((e) => { console.error(e); process.exit(1); });
