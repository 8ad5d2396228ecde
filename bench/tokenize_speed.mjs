// The other half of bench/tokenize_speed.sh: Hugging Face's Rust tokenizers
// (npm "tokenizers") on the same texts: one at a time (await each encode),
// then all in one encodeBatch call; best of REPS passes each.
// usage: node tokenize_speed.mjs TOKENIZER.json TEXTS.jsonl [REPS]
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(new URL('../tests/oracle/package.json', import.meta.url));
const { Tokenizer } = require('tokenizers');
const [tj, tp, repsArg] = process.argv.slice(2);
const reps = Number(repsArg || 3);
let t0 = performance.now();
const t = Tokenizer.fromFile(tj);
const load = (performance.now() - t0) / 1000;
t.disableTruncation(); t.disablePadding();
const rows = fs.readFileSync(tp, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l).text);
let best = 1e30, tokens = 0;
for (let r = 0; r < reps; r++) {
  tokens = 0;
  const s = performance.now();
  for (const x of rows) tokens += (await t.encode(x)).getLength();
  best = Math.min(best, (performance.now() - s) / 1000);
}
console.log(`hf-rust (encode, one await each) ${rows.length} texts ${tokens} tokens ${best.toFixed(3)} s ${Math.round(tokens / best)} tokens/s (load ${load.toFixed(2)} s)`);
// encodeBatch: one call for all texts (no per-call Node overhead); RAYON_NUM_THREADS=1 keeps it on one thread
best = 1e30;
for (let r = 0; r < reps; r++) {
  tokens = 0;
  const s = performance.now();
  for (const e of await t.encodeBatch(rows)) tokens += e.getLength();
  best = Math.min(best, (performance.now() - s) / 1000);
}
console.log(`hf-rust (encodeBatch) ${rows.length} texts ${tokens} tokens ${best.toFixed(3)} s ${Math.round(tokens / best)} tokens/s`);
