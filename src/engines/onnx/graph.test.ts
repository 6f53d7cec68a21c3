import assert from "node:assert/strict";
import { test } from "node:test";
import { cachedPartsFor, planStages, stagePlans } from "./graph.js";

test("stages: as many layers as fit the byte budget, at least one each, covering every layer once", () => {
  assert.deepEqual(planStages(28, 10, 1000), [{ first: 0, end: 28 }]);
  assert.deepEqual(planStages(5, 10, 25), [
    { first: 0, end: 2 },
    { first: 2, end: 4 },
    { first: 4, end: 5 },
  ]);
  assert.deepEqual(planStages(3, 100, 10), [
    { first: 0, end: 1 },
    { first: 1, end: 2 },
    { first: 2, end: 3 },
  ]);
  // The 8B shape in int8 (36 layers of ~193M weights) under 1.5e9 bytes: 6 stages of at most 7 layers.
  const eightB = planStages(36, 193e6, 1.5e9);
  assert.equal(eightB.length, 6);
  assert.ok(eightB.every((s) => s.end - s.first <= 7 && (s.end - s.first) * 193e6 <= 1.5e9));
});

test("stage plans: the cache holds every layer in one graph (two halves from two threads) unless stageBytes is set; memory splits by bytes", () => {
  // The 8B shape in int8: one session from the cache, 6 graphs of at most 1.5e9 bytes in memory.
  const eightB = stagePlans(36, 193e6, undefined, 1.5e9);
  assert.deepEqual(eightB.cached, [{ first: 0, end: 36 }]);
  assert.equal(eightB.inMemory.length, 6);
  // Two halves for an engine of two threads or more (created side by side) up to 5 GB of weights; one graph for one thread or the 8B's 6.6 GB.
  assert.deepEqual(stagePlans(36, 100e6, undefined, 1.5e9, cachedPartsFor(2, 36 * 100e6)).cached, [
    { first: 0, end: 18 },
    { first: 18, end: 36 },
  ]);
  assert.deepEqual(stagePlans(3, 10, undefined, 1e9, 2).cached, [
    { first: 0, end: 2 },
    { first: 2, end: 3 },
  ]);
  assert.deepEqual(stagePlans(1, 10, undefined, 1e9, 2).cached, [{ first: 0, end: 1 }]);
  assert.deepEqual([1, 2, 16].map((t) => cachedPartsFor(t, 0.45e9)), [1, 2, 2]);
  assert.deepEqual([1, 2, 16].map((t) => cachedPartsFor(t, 36 * 193e6)), [1, 1, 1]);
  // A stageBytes the user set splits both alike.
  const set = stagePlans(36, 193e6, 1e9, 1.5e9);
  assert.deepEqual(set.cached, set.inMemory);
  assert.equal(set.cached.length, 8);
});

test("a long pair's memory in the onnx engine: its cache once, plus one layer's attention working set", async () => {
  const { longPairBytes } = await import("./onnx-fit.js");
  const { DEFAULT_RUN_SCORE_BYTES: budget } = await import("./run-plan.js");
  const shape = { layers: 28, hidden: 1024, heads: 16, kvHeads: 8, headDim: 128, ffn: 3072 };
  // One fp32 copy of a 32k-token cache on the 0.6B shape is 7.3 GB: held once, with one layer's
  // transposed/expanded copies and a run's scores (twice: the arena's slack), it fits in 24 GB (it
  // was killed at 24.2 GB when held ~4 times; it peaked at 11.8 GB RSS, weights included, when held once).
  const cacheOnce = 28 * 2 * 8 * 128 * 4 * 32256;
  const bytes = longPairBytes(shape, 32256, 512, "fp32", budget);
  assert.ok(bytes > cacheOnce && bytes < 2 * cacheOnce, `${bytes}`);
  assert.ok(bytes < 14 * 2 ** 30);
  // Each graph's session keeps its own arena: the working set counts once per session.
  const working = bytes - cacheOnce;
  assert.equal(longPairBytes(shape, 32256, 512, "fp32", budget, 3) - cacheOnce, 3 * working);
  assert.ok(longPairBytes(shape, 2000, 512, "fp32", budget) > longPairBytes(shape, 1000, 512, "fp32", budget));
  // The int8 cache: a byte a value and a scale per token and head, under a third of fp32's
  // (the bar); the run's fp32 working set is the same.
  const int8Once = 28 * 2 * 8 * (128 + 4) * 32256;
  assert.ok(int8Once < cacheOnce / 3);
  assert.equal(longPairBytes(shape, 32256, 512, "fp32", budget) - longPairBytes(shape, 32256, 512, "int8", budget), cacheOnce - int8Once);
});