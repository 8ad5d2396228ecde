// /tokenize's tokens as Text Embeddings Inference answers them, from Hugging
// Face's tokenizers (the Rust library through its Node bindings, npm
// "tokenizers"): per text [{"id","special","start","stop"}, ...], character
// offsets (null for the template's special tokens, as TEI). Texts must stay
// in the Basic Multilingual Plane (JavaScript counts UTF-16 units).
//
// usage: node hf_offsets.mjs TOKENIZER.json TEXTS.json MAXLEN right|left
import fs from 'node:fs';
import { Tokenizer } from 'tokenizers';

const [tj, textsPath, maxArg, direction] = process.argv.slice(2);
const t = Tokenizer.fromFile(tj);
t.disablePadding();
t.setTruncation(Number(maxArg), { direction, strategy: 'LongestFirst' });
const out = [];
for (const text of JSON.parse(fs.readFileSync(textsPath, 'utf8'))) {
  const e = await t.encode(text);
  const ids = e.getIds(), off = e.getOffsets(), sp = e.getSpecialTokensMask();
  out.push(ids.map((id, k) => ({ id, special: sp[k] === 1, start: sp[k] ? null : off[k][0], stop: sp[k] ? null : off[k][1] })));
}
console.log(JSON.stringify(out));
