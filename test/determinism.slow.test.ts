import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Reranker } from "../src/reranker.js";
import { createReranker } from "../src/reranker.js";
import type { RunningServer } from "../src/server/serve.js";
import { startServer } from "../src/server/serve.js";
import { testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

// The guarantee under test: a pair's log-odds is a function of (model file, engine settings,
// prompt tokens) alone, bit for bit, for both engines the default may run. Default engine settings
// on purpose (llama.cpp: F16 KV cache, flash attention, where its rounding depends most on the
// decode shape, up to ~7e-3 in z before the fix; onnx: int8, one document a run). Every comparison
// below is `===` because the computation is the same by design.
const base = { model: testModel("causal"), maxLength: 256, gpu: false, logLevel: "error" } as const;
/** Each engine, and the parallel sequences it keeps the guarantee with (onnx: more than 1 batches documents, a documented opt-out). */
const ENGINES = [
  { name: "llama.cpp engine", settings: { ...base, engine: "llama" }, sequences: 4 },
  { name: "onnx int8 engine", settings: { ...base, engine: "onnx", onnxPrecision: "int8" }, sequences: 1 },
] as const;
const OTHER_QUERY = "Which river is the longest?";

/**
 * Each document scored alone, one call each, by a reranker that never reuses a prefix (every pair
 * starts from a cleared sequence): the reference bits. `fresh` lists documents that are also
 * scored by a newly loaded reranker, to show that a cleared sequence is as good as a new process.
 */
async function aloneLogits(options: Parameters<typeof createReranker>[0], query: string, documents: readonly string[], fresh: number[]): Promise<number[]> {
  const out: number[] = [];
  const clean = await createReranker({ ...options, prefixReuse: false });
  try {
    for (const document of documents) out.push((await clean.score([{ query, document }]))[0]?.logit ?? Number.NaN);
  } finally {
    await clean.dispose();
  }
  for (const i of fresh) {
    const loaded = await createReranker(options);
    try {
      const z = (await loaded.score([{ query, document: documents[i] ?? "" }]))[0]?.logit;
      assert.ok(Object.is(z, out[i]), `document ${i} in a new process: ${z} vs ${out[i]} (must be bit-identical)`);
    } finally {
      await loaded.dispose();
    }
  }
  return out;
}

const assertBitIdentical = (got: readonly number[], want: readonly number[], what: string) => {
  assert.equal(got.length, want.length);
  got.forEach((z, i) => assert.ok(Object.is(z, want[i]), `${what}, pair ${i}: ${z} vs ${want[i]} (must be bit-identical)`));
};

for (const { name, settings, sequences } of ENGINES) describe(`determinism (${name}): a pair's log-odds does not depend on what else was evaluated`, () => {
  let alone: number[];
  let reranker: Reranker;
  before(async () => {
    alone = await aloneLogits(settings, QUERY_EN, DOCUMENTS, [0, 6]);
    reranker = await createReranker(settings);
  });
  after(() => reranker.dispose());

  const logitsByIndex = (results: ReadonlyArray<{ index: number; logit: number }>, n: number) => {
    const out = new Array<number>(n).fill(Number.NaN);
    for (const r of results) out[r.index] = r.logit;
    return out;
  };

  test("library: alone, after other queries, in batches of any size, order and mix, prefix cache warm or cold", async () => {
    // cache warm: the head of QUERY_EN is held from the previous pair
    assertBitIdentical(logitsByIndex(await reranker.rerank(QUERY_EN, DOCUMENTS), DOCUMENTS.length), alone, "one batch of all");
    const reversed = [...DOCUMENTS].reverse();
    assertBitIdentical(logitsByIndex(await reranker.rerank(QUERY_EN, reversed), DOCUMENTS.length).reverse(), alone, "reversed batch");
    for (const size of [1, 3, 5]) {
      await reranker.rerank(OTHER_QUERY, DOCUMENTS.slice(0, size)); // the slot now holds another head
      const part = logitsByIndex(await reranker.rerank(QUERY_EN, DOCUMENTS.slice(size, size + 4)), 4);
      assertBitIdentical(part, alone.slice(size, size + 4), `batch of 4 after another query (${size})`);
    }
    // two queries interleaved pair by pair, plus a long document that fills the context
    const mixed = DOCUMENTS.flatMap((document) => [
      { query: OTHER_QUERY, document: "river ".repeat(400) },
      { query: QUERY_EN, document },
      { query: QUERY_ZH, document },
    ]);
    const scored = await reranker.score(mixed);
    assertBitIdentical(scored.filter((_, i) => i % 3 === 1).map((s) => s.logit), alone, "interleaved with other queries");
  });

  test(`library: ${sequences} parallel sequences give the same bits as 1 sequence`, { skip: sequences === 1 ? "one document a run is this engine's deterministic setting" : false }, async () => {
    const parallel = await createReranker({ ...settings, sequences });
    try {
      const z = (await parallel.score(DOCUMENTS.map((document) => ({ query: QUERY_EN, document })))).map((s) => s.logit);
      assertBitIdentical(z, alone, "4 sequences");
    } finally {
      await parallel.dispose();
    }
  });

  test("rank pooling (untied rank-head path): alone and in a batch", { skip: settings.engine === "llama" ? false : "llama.cpp's rank pooling only" }, async () => {
    const pooled = { ...settings, model: testModel("rank"), rankHead: "rank-pooling" } as const;
    const docs = DOCUMENTS.slice(0, 6);
    const single = await aloneLogits(pooled, QUERY_EN, docs, [2]);
    const batched = await createReranker(pooled);
    try {
      await batched.rerank(OTHER_QUERY, docs);
      assertBitIdentical((await batched.score(docs.map((document) => ({ query: QUERY_EN, document })))).map((s) => s.logit), single, "rank pooling");
    } finally {
      await batched.dispose();
    }
  });

  describe("through the server", () => {
    let server: RunningServer;
    before(async () => {
      server = await startServer({ reranker: { ...settings, sequences, cache: { maxEntries: 1000 } }, port: 0, scheduler: { maxBatchPairs: 7 } });
      await server.ready;
    });
    after(() => server.close());

    const rerank = async (query: string, documents: readonly string[]) => {
      const res = await fetch(`${server.url}/v1/rerank`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query, documents, return_logits: true }),
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { results: Array<{ index: number; logit: number }> }).results;
    };

    test("concurrent requests of different sizes, merged by the scheduler, then the same requests from a warm cache", async () => {
      // Each request holds a different slice of the documents, next to requests for other queries.
      const slices = [[0, 12], [2, 5], [5, 6], [6, 12], [0, 1], [3, 9]] as const;
      const round = () =>
        Promise.all([
          ...slices.map(async ([from, to]) => ({ from, to, results: await rerank(QUERY_EN, DOCUMENTS.slice(from, to)) })),
          rerank(OTHER_QUERY, DOCUMENTS),
          rerank(QUERY_ZH, DOCUMENTS.slice(0, 8)),
        ]);
      for (const label of ["cold cache", "warm cache"]) {
        const answers = await round();
        for (const a of answers.slice(0, slices.length)) {
          if (!("from" in a)) continue;
          assertBitIdentical(logitsByIndex(a.results, a.to - a.from), alone.slice(a.from, a.to), `${label}, documents ${a.from}..${a.to}`);
        }
      }
    });
  });
});
