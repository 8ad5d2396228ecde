// Hugging Face's own inference client (npm "@huggingface/inference") against
// cembed's root route, as against a TEI server or an Inference Endpoint:
// InferenceClient with endpointUrl = the server, featureExtraction of one
// text and of several, sentenceSimilarity, with the API key given. Prints
// one JSON object (each call's result, or its error).
// usage: node hf_inference_client.mjs ENDPOINT_URL API_KEY SOURCE SENTENCE...
import { InferenceClient } from "@huggingface/inference";

const [endpointUrl, key, source, ...sentences] = process.argv.slice(2);
const client = new InferenceClient(key, { endpointUrl });
const out = {};
const attempt = async (name, fn) => {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { error: String(e.message), status: e.httpResponse?.status ?? null };
  }
};
await attempt("one", () => client.featureExtraction({ inputs: source }));
await attempt("many", () => client.featureExtraction({ inputs: [source, ...sentences] }));
await attempt("similarity", () =>
  client.sentenceSimilarity({ inputs: { source_sentence: source, sentences } }));
console.log(JSON.stringify(out));
