// The official OpenAI client (npm "openai") against cembed's /v1 routes:
// lists the models, embeds the texts (floats, and base64 as the client
// decodes it), with the API key given. Prints one JSON object.
// usage: node openai_client.mjs BASE_URL API_KEY TEXT...
import OpenAI from "openai";

const [baseURL, apiKey, ...texts] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const out = {};
try {
  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);
  const model = out.models[0];
  const floats = await client.embeddings.create({ model, input: texts, encoding_format: "float" });
  out.float = floats.data.map((d) => d.embedding);
  // the client's default asks for base64 and decodes it itself
  const b64 = await client.embeddings.create({ model, input: texts });
  out.base64 = b64.data.map((d) => Array.from(d.embedding));
  out.usage = floats.usage;
} catch (e) {
  out.error = { status: e.status ?? null, message: String(e.message) };
}
console.log(JSON.stringify(out));
