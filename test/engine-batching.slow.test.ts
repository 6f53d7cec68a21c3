import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LlamaEngine } from "../src/engines/llama/llama-engine.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS } from "./fixtures/pairs.js";

// Variable-length documents: the parallel-sequence race (docs/architecture.md) swapped scores between
// documents of different lengths. 24 documents from 1 to ~150 tokens, two queries.
const docs = Array.from({ length: 24 }, (_, i) => `${DOCUMENTS[i % DOCUMENTS.length] ?? ""} ${"river city ".repeat((i * 7) % 60)}`.trim());
const queries = ["What is the capital of China?", "longest river"];

async function scoreWith(options: { sequences: number; batchSize: number; prefixReuse: boolean; rankHead?: "rank-pooling" }, model: string): Promise<Float64Array> {
  const engine = await LlamaEngine.open({ model, contextSize: 256, ...exactEngine, ...options });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const pairs = queries.flatMap((query) => docs.map((document) => ({ query, document })));
    const { groups, indices } = groupByHead(pairs.map((p) => prompt.build(p, 256)));
    const { logits, stats } = await engine.score(groups);
    if (options.prefixReuse) assert.ok(stats.evaluatedTokens < stats.pairTokens, "prefix reuse evaluates fewer tokens");
    else assert.equal(stats.evaluatedTokens, stats.pairTokens);
    const out = new Float64Array(pairs.length);
    indices.flat().forEach((i, k) => (out[i] = logits[k] ?? Number.NaN));
    return out;
  } finally {
    await engine.dispose();
  }
}

describe("batch invariance (causal flavour, F32)", () => {
  let single: Float64Array;
  const model = testModel("causal");
  before(async () => {
    single = await scoreWith({ sequences: 1, batchSize: 512, prefixReuse: false }, model);
  });

  const settings = [
    // Parallel sequences with and without prefix reuse, and batches that cut a pair into chunks.
    // (test/determinism.slow.test.ts checks batch mixes bit for bit with the default settings.)
    { sequences: 8, batchSize: 512, prefixReuse: true },
    { sequences: 12, batchSize: 64, prefixReuse: true },
    { sequences: 3, batchSize: 37, prefixReuse: false },
  ];
  for (const s of settings) {
    test(`sequences ${s.sequences}, batch ${s.batchSize}, prefix reuse ${s.prefixReuse}: every score equals its single-sequence score`, async () => {
      const got = await scoreWith(s, model);
      got.forEach((z, i) => assert.ok(Math.abs(z - (single[i] ?? Number.NaN)) < 1e-4, `pair ${i}: ${z} vs ${single[i]}`));
    });
  }
});

describe("batch invariance (rank flavour)", () => {
  test("rank pooling with and without prefix reuse equals the LM-head path with 8 sequences", async () => {
    const model = testModel("rank");
    const pooled = await scoreWith({ sequences: 1, batchSize: 512, prefixReuse: false, rankHead: "rank-pooling" }, model);
    const pooledReuse = await scoreWith({ sequences: 1, batchSize: 48, prefixReuse: true, rankHead: "rank-pooling" }, model);
    const logits = await scoreWith({ sequences: 8, batchSize: 512, prefixReuse: true }, model);
    pooled.forEach((z, i) => {
      assert.ok(Math.abs(z - (pooledReuse[i] ?? Number.NaN)) < 1e-4, `pair ${i}: ${z} vs ${pooledReuse[i]}`);
      assert.ok(Math.abs(z - (logits[i] ?? Number.NaN)) < 1e-4, `pair ${i}: ${z} vs ${logits[i]}`);
    });
  });
});

describe("engine errors", () => {
  let engine: LlamaEngine;
  before(async () => {
    engine = await LlamaEngine.open({ model: testModel("causal"), contextSize: 64, ...exactEngine });
  });
  after(() => engine.dispose());

  test("a pair longer than the context is refused with a clear error, and the engine keeps working", async () => {
    const tooLong = engine.info.maxSequenceLength + 1;
    await assert.rejects(engine.score([{ prefix: [], tails: [Array.from({ length: tooLong }, () => 279)] }]), /exceeds the engine's context/);
    const { logits } = await engine.score([{ prefix: [], tails: [[151644, 872, 198]] }]);
    assert.ok(Number.isFinite(logits[0]));
  });

  test("an aborted signal cancels before work starts", async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(engine.score([{ prefix: [], tails: [[279]] }], { signal: controller.signal }), /cancelled/);
  });

  test("a missing model file is a model_not_found error", async () => {
    await assert.rejects(LlamaEngine.open({ model: "/nonexistent/model.gguf" }), (e: Error & { code?: string }) => e.code === "model_not_found");
  });
});

describe("context edge", () => {
  test("a pair of exactly max_length tokens scores like in a larger context, and the next pairs stay correct", async () => {
    const model = testModel("causal");
    const small = await LlamaEngine.open({ model, contextSize: 256, ...exactEngine, sequences: 2 });
    const large = await LlamaEngine.open({ model, contextSize: 1024, ...exactEngine });
    try {
      assert.ok(small.info.maxSequenceLength >= 256);
      const prompt = new PromptBuilder(small.tokenizer);
      const full = prompt.build({ query: "q", document: "river ".repeat(500) }, small.info.maxSequenceLength);
      const short = prompt.build({ query: "q", document: "river city" }, small.info.maxSequenceLength);
      assert.equal(full.tokens.length, small.info.maxSequenceLength);
      const groups = [{ prefix: [], tails: [full.tokens, short.tokens, full.tokens, short.tokens] }];
      const a = await small.score(groups);
      const b = await large.score(groups);
      a.logits.forEach((z, i) => assert.ok(Math.abs(z - (b.logits[i] ?? Number.NaN)) < 1e-4, `pair ${i}: ${z} vs ${b.logits[i]}`));
    } finally {
      await small.dispose();
      await large.dispose();
    }
  });
});
