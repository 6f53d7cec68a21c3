// What moves a pair's log-odds and what does not (docs/architecture.md, "Determinism"), on the
// generated tiny model: `node --import tsx bench/determinism.ts [exact]`. Each line compares 24
// pairs with the same pairs scored one by one in a fresh engine with the same settings.
import { LlamaEngine } from "../src/engines/llama/llama-engine.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { testModel } from "../test/fixtures/models.js";
import { DOCUMENTS } from "../test/fixtures/pairs.js";

const numerics = process.argv[2] === "exact" ? ({ kvCacheType: "f32", flashAttention: false } as const) : {};
const docs = Array.from({ length: 24 }, (_, i) => `${DOCUMENTS[i % DOCUMENTS.length] ?? ""} ${"river city ".repeat((i * 7) % 60)}`.trim());
const query = "What is the capital of China?";

async function score(order: number[], settings: { sequences?: number; batchSize?: number; prefixReuse?: boolean }): Promise<number[]> {
  const engine = await LlamaEngine.open({ model: testModel("causal"), contextSize: 256, gpu: false, logLevel: "error", ...numerics, ...settings });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const { groups, indices } = groupByHead(order.map((i) => prompt.build({ query, document: docs[i] ?? "" }, 256)));
    const { logits } = await engine.score(groups);
    const out = new Array<number>(docs.length).fill(Number.NaN);
    indices.flat().forEach((k, j) => (out[order[k] ?? 0] = logits[j] ?? Number.NaN));
    return out;
  } finally {
    await engine.dispose();
  }
}

const all = docs.map((_, i) => i);
const alone: number[] = [];
for (const i of all) alone.push((await score([i], {}))[i] ?? Number.NaN);
const compare = async (label: string, order: number[], settings: Parameters<typeof score>[1]) => {
  const got = await score(order, settings);
  const same = got.filter((z, i) => Object.is(z, alone[i])).length;
  const diff = Math.max(...got.map((z, i) => Math.abs(z - (alone[i] ?? Number.NaN))));
  process.stdout.write(`${label.padEnd(34)} ${same}/${docs.length} bit-identical, max |dz| ${diff.toExponential(2)}\n`);
};
process.stdout.write(`settings: ${process.argv[2] === "exact" ? "F32 KV cache, no flash attention" : "defaults (F16 KV cache, flash attention)"}\n`);
await compare("one batch, input order", all, {});
await compare("one batch, reversed", [...all].reverse(), {});
await compare("prefix reuse off", all, { prefixReuse: false });
await compare("8 sequences", all, { sequences: 8 });
await compare("batch size 64 (another setting)", all, { batchSize: 64 });
