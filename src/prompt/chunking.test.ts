import assert from "node:assert/strict";
import { test } from "node:test";
import { chunkWindows } from "./chunking.js";

test("windows cover the document, overlap, and respect the size", () => {
  assert.deepEqual(chunkWindows(10, 4, 1), [[0, 4], [3, 7], [6, 10]]);
  assert.deepEqual(chunkWindows(3, 4, 1), [[0, 3]]);
  assert.deepEqual(chunkWindows(8, 4, 0), [[0, 4], [4, 8]]);
  for (const [n, size, overlap] of [[300, 100, 25], [1000, 37, 9], [101, 100, 99]] as const) {
    const w = chunkWindows(n, size, overlap);
    assert.equal(w[0]?.[0], 0);
    assert.equal(w.at(-1)?.[1], n);
    w.forEach(([s, e], i) => {
      assert.ok(e - s <= size && e > s);
      if (i > 0) assert.ok(s <= (w[i - 1]?.[1] ?? 0), "no gap between windows");
    });
  }
  assert.throws(() => chunkWindows(5, 0, 0), RangeError);
});
