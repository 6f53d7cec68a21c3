import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Engine } from "../src/engines/engine.js";
import { openEngine } from "../src/engines/open-engine.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { exactEngine, onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS } from "./fixtures/pairs.js";

// Pages of two queries, interleaved as a server sees them: A1, B1, A2, B2, A1 again.
const queries = ["What is the capital of China?", "longest river in the world"];
const pages = [DOCUMENTS.slice(0, 3), DOCUMENTS.slice(3, 6)];
const calls = [
  [0, 0],
  [1, 0],
  [0, 1],
  [1, 1],
  [0, 0],
] as const;

/** The distinct heads the calls bring (BPE may merge a document's first characters into its head). */
const heads = new Set<string>();

/** Every call's log-odds and evaluated tokens, one engine throughout. */
async function scoreCalls(engine: Engine): Promise<Array<{ z: number[]; evaluated: number; pairTokens: number }>> {
  const prompt = new PromptBuilder(engine.tokenizer);
  const out = [];
  for (const [q, p] of calls) {
    const pairs = (pages[p] ?? []).map((document) => prompt.build({ query: queries[q] ?? "", document }, 256));
    const { groups } = groupByHead(pairs);
    for (const g of groups) heads.add(g.prefix.join(","));
    const { logits, stats } = await engine.score(groups);
    out.push({ z: [...logits], evaluated: stats.evaluatedTokens, pairTokens: stats.pairTokens });
  }
  return out;
}

const flavours = [
  { name: "llama.cpp, causal head", options: { ...exactEngine, model: testModel("causal") } },
  { name: "llama.cpp, rank pooling", options: { ...exactEngine, model: testModel("rank"), rankHead: "rank-pooling" as const } },
  { name: "onnx fp32", options: { model: testModel("causal"), engine: "onnx" as const, threads: 1 }, skip: !onnxRuntimeInstalled },
  { name: "onnx int8", options: { model: testModel("causal"), engine: "onnx" as const, onnxPrecision: "int8" as const, threads: 1 }, skip: !onnxRuntimeInstalled },
];

describe("the prefix cache across calls", () => {
  for (const f of flavours) {
    test(`${f.name}: the same z with and without it; a query's head is evaluated once`, { skip: f.skip ? "onnxruntime-node is not installed" : false }, async () => {
      const off = await openEngine({ ...f.options, contextSize: 256, prefixCacheBytes: 0 });
      const without = await scoreCalls(off).finally(() => off.dispose());
      const on = await openEngine({ ...f.options, contextSize: 256 });
      let withCache;
      try {
        withCache = await scoreCalls(on);
        const cache = on.info.prefixCache;
        assert.ok(heads.size >= 2 && heads.size < 10);
        assert.equal(cache.misses, heads.size, "every distinct head evaluated once");
        assert.ok(cache.hits >= 3, `later calls hit (${cache.hits})`);
        assert.equal(cache.entries, heads.size);
        assert.ok(cache.bytes > 0 && cache.bytes <= cache.capacityBytes);
      } finally {
        await on.dispose();
      }
      withCache.forEach((call, c) => {
        // Bit for bit: a kept head is the one computed alone.
        assert.deepEqual(call.z, without[c]?.z, `call ${c}`);
        assert.equal(call.pairTokens, without[c]?.pairTokens);
      });
      const saved = without.reduce((n, c) => n + c.evaluated, 0) - withCache.reduce((n, c) => n + c.evaluated, 0);
      assert.ok(saved > 0, "the cache evaluated fewer tokens");
      assert.ok(withCache.slice(2).every((c, i) => c.evaluated < (without[i + 2]?.evaluated ?? 0)), "every later call starts from a kept head");
    });
  }

  test("llama.cpp: a cache too small for one head keeps nothing, scores stay the same, and dispose removes its folder", async () => {
    // A temporary folder of this test's own: other test files' engines make theirs meanwhile.
    const own = mkdtempSync(join(tmpdir(), "qr-prefix-"));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = own;
    const tiny = await openEngine({ ...exactEngine, model: testModel("causal"), contextSize: 256, prefixCacheBytes: 1000 });
    const reference = await openEngine({ ...exactEngine, model: testModel("causal"), contextSize: 256, prefixCacheBytes: 0 });
    try {
      const [a, b] = await Promise.all([scoreCalls(tiny), scoreCalls(reference)]);
      a.forEach((call, c) => assert.deepEqual(call.z, b[c]?.z));
      assert.equal(tiny.info.prefixCache.entries, 0);
      assert.equal(tiny.info.prefixCache.bytes, 0);
      assert.equal(readdirSync(own).filter((n) => n.startsWith("qwen-rerank-heads-")).length, 1, "the engine made its folder");
    } finally {
      await Promise.all([tiny.dispose(), reference.dispose()]);
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.deepEqual(readdirSync(own).filter((n) => n.startsWith("qwen-rerank-heads-")), [], "dispose removed it");
    rmSync(own, { recursive: true, force: true });
  });
});
