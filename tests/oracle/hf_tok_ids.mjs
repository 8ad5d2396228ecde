// The oracle of tests/oracle/tok_ids.c: Hugging Face's tokenizers (the Rust
// library through its Node bindings, npm "tokenizers") encodes JSON lines
// with one tokenizer.json. Same usage and output as tok_ids; truncation and
// padding stored in the file are replaced by the mode's.
//
// usage: node hf_tok_ids.mjs TOKENIZER.json TEXTS.jsonl single|right|left|pair MAXLEN
import fs from 'node:fs';
import { Tokenizer } from 'tokenizers';

const [tj, textsPath, mode, maxArg] = process.argv.slice(2);
const maxLen = Number(maxArg || 0);
const t = Tokenizer.fromFile(tj);
t.disablePadding();
if (maxLen > 0 && mode !== 'single')
  t.setTruncation(maxLen, { direction: mode === 'left' ? 'left' : 'right', strategy: 'LongestFirst' });
else t.disableTruncation();
const rows = [];
for (const line of fs.readFileSync(textsPath, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const r = JSON.parse(line);
  rows.push(typeof r === 'string' ? r : r.text);
}
const out = [];
for (let i = 0; i < rows.length; i++) {
  const e = mode === 'pair' ? await t.encode(rows[i], rows[(i + 1) % rows.length]) : await t.encode(rows[i]);
  const ids = e.getIds(), types = e.getTypeIds();
  let k = types.indexOf(1);
  if (k < 0) k = ids.length;
  out.push(`{"ids":[${ids.join(',')}],"type1":${k}}`);
}
fs.writeFileSync(1, out.join('\n') + (out.length ? '\n' : ''));
