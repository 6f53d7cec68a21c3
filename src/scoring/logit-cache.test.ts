import assert from "node:assert/strict";
import { test } from "node:test";
import { CachedSource } from "../pipeline/log-odds.js";
import { LogitCache } from "./logit-cache.js";

test("the cache keys by model and exact tokens, counts hits and misses, and stays bounded", () => {
  const cache = new LogitCache(() => "model-a", { maxEntries: 3 });
  const k1 = cache.key([1, 2, 3]);
  assert.equal(cache.get(k1), undefined);
  cache.set(k1, 1.5);
  assert.equal(cache.get(k1), 1.5);
  assert.notEqual(cache.key([1, 2, 4]), k1);
  assert.notEqual(new LogitCache(() => "model-b").key([1, 2, 3]), k1);
  for (let i = 0; i < 10; i++) cache.set(cache.key([i]), i);
  assert.equal(cache.stats.entries, 3);
  assert.equal(cache.get(k1), undefined, "least recently used entries are evicted");
  assert.deepEqual([cache.stats.hits, cache.stats.misses], [1, 2]);
  const small = new LogitCache(() => "m", { maxBytes: 128 * 5 });
  for (let i = 0; i < 50; i++) small.set(small.key([i]), i);
  assert.ok(small.stats.bytes <= 128 * 5 && small.stats.entries === 5);
});

test("a call during which the engine's numerics changed (a memory back-off) is not cached", async () => {
  let numerics = "batch=512";
  const cache = new LogitCache(() => `m|${numerics}`);
  const inner = {
    evaluate: (pairs: ReadonlyArray<{ tokens: number[] }>) => {
      numerics = "batch=256";
      return Promise.resolve({ logits: Float64Array.from(pairs, () => 1), stats: { evaluatedTokens: 0, pairTokens: 0 }, cached: 0, queueMs: 0, inferenceMs: 0 });
    },
  };
  const source = new CachedSource(cache, inner);
  const pair = { tokens: [1, 2], truncated: false, headLength: 1 };
  await source.evaluate([pair]);
  assert.equal(cache.stats.entries, 0);
  await source.evaluate([pair]);
  assert.equal(cache.stats.entries, 1, "with stable numerics the value is kept");
});
