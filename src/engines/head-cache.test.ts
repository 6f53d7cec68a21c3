import assert from "node:assert/strict";
import { test } from "node:test";
import { HeadCache } from "./head-cache.js";

test("head cache: exact-token hits, least recently used out first, bounded in bytes", () => {
  const released: string[] = [];
  const cache = new HeadCache<string>(100, (v) => released.push(v));
  assert.equal(cache.set([1, 2], "a", 40), true);
  assert.equal(cache.set([1, 3], "b", 40), true);
  assert.equal(cache.get([1, 2]), "a", "a is now the most recently used");
  assert.equal(cache.get([1]), undefined, "a shorter prefix is another head");
  assert.equal(cache.set([4], "c", 40), true);
  assert.deepEqual(released, ["b"], "b was the least recently used");
  assert.equal(cache.get([1, 3]), undefined);
  assert.deepEqual(cache.stats, { capacityBytes: 100, bytes: 80, entries: 2, hits: 1, misses: 2 });
});

test("head cache: a head larger than the cache is released at once; a replaced head is released", () => {
  const released: string[] = [];
  const cache = new HeadCache<string>(100, (v) => released.push(v));
  assert.equal(cache.set([9], "huge", 101), false);
  assert.equal(cache.set([1], "old", 10), true);
  assert.equal(cache.set([1], "new", 20), true);
  assert.deepEqual(released, ["huge", "old"]);
  assert.equal(cache.stats.bytes, 20);
  cache.clear();
  assert.deepEqual(released, ["huge", "old", "new"]);
  assert.deepEqual({ ...cache.stats, hits: 0, misses: 0 }, { capacityBytes: 100, bytes: 0, entries: 0, hits: 0, misses: 0 });
  const off = new HeadCache<string>(0);
  assert.equal(off.set([1], "x", 1), false, "capacity 0 keeps nothing");
});
