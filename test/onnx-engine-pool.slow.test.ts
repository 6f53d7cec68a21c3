import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { OnnxEnginePool } from "../src/engines/onnx/engine-pool.js";
import { groupByHead } from "../src/prompt/groups.js";
import type { PairTokens } from "../src/prompt/tokens.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { cliAsync } from "./fixtures/cli.js";
import { onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

const skip = onnxRuntimeInstalled ? false : "onnxruntime-node (an optional peer dependency) is not installed";
const model = testModel("causal");
const options = { model, precision: "int8" as const, contextSize: 160, batchSize: 24, logLevel: "error" as const };

describe("onnx engines of one thread each, side by side (onnxEngines)", { skip }, () => {
  let pool: OnnxEnginePool;
  let pairs: PairTokens[];
  before(async () => {
    pool = await OnnxEnginePool.open(options, 2);
    const prompt = new PromptBuilder(pool.tokenizer);
    pairs = [...DOCUMENTS.slice(0, 5).map((document) => ({ query: QUERY_EN, document })), ...DOCUMENTS.slice(0, 2).map((document) => ({ query: QUERY_ZH, document })), { query: QUERY_EN, document: LONG_DOCUMENT }].map((p) => prompt.build(p, 160));
  });
  after(async () => {
    await pool.dispose();
  });

  test("the same z, bit for bit, as one engine of one thread and of two, in group order; progress per pair; info says how many engines", async () => {
    const { groups } = groupByHead(pairs);
    const done: number[] = [];
    const pooled = await pool.score(groups, { onProgress: (n) => done.push(n) });
    // Bit equality is the point: a pair's z must not depend on which engine scored it or beside what.
    for (const threads of [1, 2]) {
      const single = await OnnxEngine.open({ ...options, threads });
      try {
        const { logits } = await single.score(groups);
        assert.deepEqual([...pooled.logits], [...logits], `one engine of ${threads} thread(s)`);
      } finally {
        await single.dispose();
      }
    }
    assert.deepEqual(done, pairs.map((_, i) => i + 1));
    assert.ok(pooled.stats.evaluatedTokens > 0 && pooled.stats.pairTokens >= pooled.stats.evaluatedTokens);
    assert.match(pool.info.backend, /2 engines of 1 thread/);
    assert.equal(pool.info.sequences, 2);
    assert.equal(pool.info.memberProcesses?.count, 2);
    assert.ok((pool.info.memberProcesses?.peakRssBytes ?? 0) > 0, "the members' memory is reported");
    // Each engine keeps the heads it evaluated: a second call finds them.
    await pool.score(groups);
    assert.ok(pool.info.prefixCache.hits > 0, JSON.stringify(pool.info.prefixCache));
  });

  test("a cancelled call rejects as cancelled and the pool scores the next one", async () => {
    const { groups } = groupByHead(pairs);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(pool.score(groups, { signal: controller.signal }), /cancelled/);
    const { logits } = await pool.score(groups);
    assert.equal(logits.length, pairs.length);
  });

  test("bad settings and files are errors in words, and no process is left behind", async () => {
    await assert.rejects(OnnxEnginePool.open(options, 1), /onnxEngines must be a whole number of 2 or more/);
    await assert.rejects(OnnxEnginePool.open({ ...options, kvCache: "int4" as never }, 2), /unknown onnx kvCache int4/);
  });

  test("from the CLI: --onnx-engines 2 scores with the same numbers as one engine", async () => {
    const args = ["score", "--model", model, "--engine", "onnx", "-q", QUERY_EN, "-d", DOCUMENTS[0] ?? "", "-d", DOCUMENTS[1] ?? "", "--json"];
    const [pooled, single] = await Promise.all([cliAsync([...args, "--onnx-engines", "2"]), cliAsync([...args, "--threads", "1"])]);
    assert.equal(pooled.code, 0, pooled.stderr);
    assert.equal(single.code, 0, single.stderr);
    const scores = (out: string) => (JSON.parse(out) as { results: Array<{ logit: number }> }).results.map((r) => r.logit);
    assert.deepEqual(scores(pooled.stdout), scores(single.stdout));
  });
});
