import assert from "node:assert/strict";
import { test } from "node:test";
import { commonPrefixLength, groupByPrefix } from "./groups.js";

test("commonPrefixLength finds the longest shared token prefix", () => {
  assert.equal(commonPrefixLength([[1, 2, 3], [1, 2, 4], [1, 2]]), 2);
  assert.equal(commonPrefixLength([[5], [6]]), 0);
  assert.equal(commonPrefixLength([]), 0);
  assert.equal(commonPrefixLength([[1, 2, 3]]), 3);
});

test("groupByPrefix splits per key and always leaves a tail token", () => {
  const seqs = [[1, 2, 3, 4], [1, 2, 3, 5, 6], [9, 9], [1, 2, 3, 4]];
  const { groups, indices } = groupByPrefix(seqs, ["a", "a", "b", "a"]);
  assert.deepEqual(indices, [[0, 1, 3], [2]]);
  assert.deepEqual(groups[0]?.prefix, [1, 2, 3]);
  assert.deepEqual(groups[0]?.tails, [[4], [5, 6], [4]]);
  // a single pair keeps its last token as the tail
  assert.deepEqual(groups[1]?.prefix, [9]);
  assert.deepEqual(groups[1]?.tails, [[9]]);
  groups.forEach((g, gi) => g.tails.forEach((t, ti) => assert.deepEqual([...g.prefix, ...t], seqs[indices[gi]?.[ti] ?? -1])));
});
