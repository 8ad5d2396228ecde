// Independent oracle for cembed's tokenizer: Hugging Face's JS tokenizers
// (@huggingface/tokenizers) encode each text of a JSONL file with the model's
// tokenizer.json; sequences over MAXLEN become ids[:MAXLEN-1] + [SEP], as
// sentence-transformers truncates. Truncation and padding stored in
// tokenizer.json are not applied (the package does not apply them).
//
// usage: node hf_tokenize.mjs MODEL_DIR TEXTS.jsonl OUT.jsonl [MAXLEN]
//   OUT.jsonl: one {"id": ..., "ids": [...]} per input line, in order
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const [dir, textsPath, outPath, maxLenArg] = process.argv.slice(2);
if (!dir || !textsPath || !outPath) {
  console.error('usage: node hf_tokenize.mjs MODEL_DIR TEXTS.jsonl OUT.jsonl [MAXLEN]');
  process.exit(2);
}
const maxLen = Number(maxLenArg || 256);
const tokJson = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const cfgPath = path.join(dir, 'tokenizer_config.json');
const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, 'utf8')) : {};
const tokenizer = new Tokenizer(tokJson, cfg);
const sepId = tokJson.model.vocab['[SEP]'];

const out = [];
let index = 0;
for (const line of fs.readFileSync(textsPath, 'utf8').split('\n')) {
  if (line.trim().length === 0) continue;
  const rec = JSON.parse(line);
  const text = typeof rec === 'string' ? rec : rec.text;
  const id = typeof rec === 'string' || rec.id === undefined ? String(index) : rec.id;
  let ids = tokenizer.encode(text).ids;
  if (ids.length > maxLen) ids = ids.slice(0, maxLen - 1).concat([sepId]);
  out.push(JSON.stringify({ id, ids }));
  index++;
}
fs.writeFileSync(outPath, out.join('\n') + '\n');
