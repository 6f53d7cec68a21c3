import assert from "node:assert/strict";
import { test } from "node:test";
import { looksLikeRerankerName, unloadsToFit } from "./model-pool.js";

const GB = 1024 ** 3;
const resident = (name: string, bytes: number, lastUsed: number, busy = false) => ({ name, bytes, lastUsed, busy });

test("nothing is unloaded while everything fits", () => {
  assert.deepEqual(unloadsToFit([resident("a", GB, 1)], GB, { maxLoaded: 2, budgetBytes: 4 * GB }), []);
  assert.deepEqual(unloadsToFit([], 3 * GB, { maxLoaded: 1, budgetBytes: 3 * GB }), []);
});

test("beyond the count, the least recently used idle model goes first", () => {
  const plan = unloadsToFit([resident("new", GB, 30), resident("old", GB, 10), resident("mid", GB, 20)], GB, { maxLoaded: 2, budgetBytes: Infinity });
  assert.deepEqual(plan?.map((r) => r.name), ["old", "mid"]);
});

test("beyond the memory budget, as many idle models go as the incoming one needs, oldest first", () => {
  const residents = [resident("a", 2 * GB, 1), resident("b", 2 * GB, 2), resident("c", 2 * GB, 3)];
  assert.deepEqual(unloadsToFit(residents, 3 * GB, { maxLoaded: Infinity, budgetBytes: 8 * GB })?.map((r) => r.name), ["a"]);
  assert.deepEqual(unloadsToFit(residents, 5 * GB, { maxLoaded: Infinity, budgetBytes: 8 * GB })?.map((r) => r.name), ["a", "b"]);
});

test("busy models stay; when the idle ones are not enough the request waits (undefined)", () => {
  const residents = [resident("busy-old", GB, 1, true), resident("idle", GB, 5)];
  assert.deepEqual(unloadsToFit(residents, GB, { maxLoaded: 2, budgetBytes: Infinity })?.map((r) => r.name), ["idle"]);
  assert.equal(unloadsToFit([resident("busy", GB, 1, true)], GB, { maxLoaded: 1, budgetBytes: Infinity }), undefined);
  assert.equal(unloadsToFit([resident("idle", GB, 1)], 4 * GB, { maxLoaded: 4, budgetBytes: 3 * GB }), undefined, "too big even alone");
});

test("other rerankers' names are recognised; other names are not", () => {
  for (const name of ["rerank-english-v3.0", "rerank-v3.5", "jina-reranker-v2-base-multilingual", "Salesforce/Llama-Rank-v1", "BAAI/bge-reranker-v2-m3", "qwen3-reranker"]) assert.ok(looksLikeRerankerName(name), name);
  for (const name of ["gpt-4o", "bge-m3", "text-embedding-3-small"]) assert.ok(!looksLikeRerankerName(name), name);
});
