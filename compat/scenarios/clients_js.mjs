// The JavaScript `ollama` and `openai` packages (compat/js) against the gateway: list, show, chat
// streaming, embeddings, abort. Prints one JSON line: {scenario: {ok, value} | {ok: false, type, error, status}}.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The packages live in compat/js/node_modules, next to the package.json that pins them.
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "js", "package.json"));
const { Ollama } = await import(require.resolve("ollama"));
const OpenAI = (await import(require.resolve("openai"))).default;

const URL = process.env.COMPAT_URL ?? "http://127.0.0.1:8080";
const CHAT = process.env.COMPAT_CHAT_MODEL ?? "llama3.2:3b";
const REAL = process.env.COMPAT_REAL_MODEL ?? "smollm2:135m";
const EMBED = process.env.COMPAT_EMBED_MODEL ?? "nomic-embed-text";
const TIMEOUT_MS = 120_000;

const ollama = new Ollama({ host: URL });
const openai = new OpenAI({ baseURL: `${URL}/v1`, apiKey: "unused", timeout: TIMEOUT_MS });
const scenarios = {};

scenarios.ollama_list = async () => (await ollama.list()).models.map((m) => ({ name: m.name, digest: m.digest }));

scenarios.ollama_show = async () => {
  const shown = await ollama.show({ model: CHAT });
  return { family: shown.details?.family, capabilities: shown.capabilities ?? null };
};

scenarios.ollama_chat_stream = async () => {
  const parts = [];
  for await (const part of await ollama.chat({ model: CHAT, messages: [{ role: "user", content: "Count" }],
                                               stream: true, options: { num_predict: 12 } })) {
    parts.push(part);
  }
  return { chunks: parts.length, done: parts.at(-1).done, text: parts.map((p) => p.message.content).join("") };
};

scenarios.ollama_chat_real_model = async () => {
  const reply = await ollama.chat({ model: REAL, messages: [{ role: "user", content: "What is the capital of France?" }],
                                    options: { num_predict: 32, temperature: 0, seed: 42 } });
  return reply.message.content;
};

scenarios.ollama_embed = async () => {
  const reply = await ollama.embed({ model: EMBED, input: ["first text", "second text"] });
  return { count: reply.embeddings.length, dims: reply.embeddings[0].length };
};

scenarios.ollama_abort = async () => {
  // A long answer, aborted after its first chunk: the client must end with an AbortError, promptly.
  const stream = await ollama.chat({ model: CHAT, messages: [{ role: "user", content: "Write a long story" }],
                                     stream: true, options: { num_predict: 2000 } });
  let chunks = 0;
  const started = Date.now();
  try {
    for await (const _part of stream) {
      chunks += 1;
      if (chunks === 1) stream.abort();
    }
  } catch (err) {
    return { error: err.name, chunks, ms: Date.now() - started };
  }
  return { error: null, chunks, ms: Date.now() - started };
};

scenarios.openai_models = async () => {
  const ids = [];
  for await (const model of openai.models.list()) ids.push(model.id);
  return ids;
};

scenarios.openai_chat_stream = async () => {
  const stream = await openai.chat.completions.create({ model: CHAT, messages: [{ role: "user", content: "Count" }],
                                                        max_tokens: 12, stream: true });
  const parts = [];
  for await (const part of stream) parts.push(part.choices[0]?.delta?.content ?? "");
  return { chunks: parts.length, text: parts.join("") };
};

scenarios.openai_embeddings = async () => {
  const reply = await openai.embeddings.create({ model: EMBED, input: ["first text", "second text"] });
  return { count: reply.data.length, dims: reply.data[0].embedding.length };
};

scenarios.openai_abort = async () => {
  const controller = new AbortController();
  const stream = await openai.chat.completions.create(
    { model: CHAT, messages: [{ role: "user", content: "Write a long story" }], max_tokens: 2000, stream: true },
    { signal: controller.signal });
  let chunks = 0;
  const started = Date.now();
  try {
    for await (const _part of stream) {
      chunks += 1;
      if (chunks === 1) controller.abort();
    }
  } catch (err) {
    return { error: err.name, chunks, ms: Date.now() - started };
  }
  return { error: null, chunks, ms: Date.now() - started };
};

function withTimeout(promise, name) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name} took longer than ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(scenarios);
const results = {};
for (const name of wanted) {
  try {
    results[name] = { ok: true, value: await withTimeout(scenarios[name](), name) };
  } catch (err) {
    console.error(err);
    results[name] = { ok: false, type: err?.name ?? "Error", error: String(err?.message ?? err).slice(0, 2000),
                      status: err?.status_code ?? err?.status ?? null };
  }
}
console.log(JSON.stringify(results));
process.exit(0);
