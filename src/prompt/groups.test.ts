import assert from "node:assert/strict";
import { test } from "node:test";
import { commonPrefixLength, groupByHead } from "./groups.js";

test("commonPrefixLength finds the longest shared token prefix", () => {
  assert.equal(commonPrefixLength([[1, 2, 3], [1, 2, 4], [1, 2]]), 2);
  assert.equal(commonPrefixLength([[5], [6]]), 0);
  assert.equal(commonPrefixLength([]), 0);
  assert.equal(commonPrefixLength([[1, 2, 3]]), 3);
});

test("groupByHead groups pairs with identical heads and always leaves a tail token", () => {
  const pairs = [
    { tokens: [1, 2, 3, 4], headLength: 2 },
    { tokens: [1, 2, 3, 5, 6], headLength: 2 },
    { tokens: [9, 9], headLength: 2 },
    { tokens: [1, 2, 3, 4], headLength: 3 },
    { tokens: [1, 2, 7], headLength: 2 },
  ];
  const { groups, indices } = groupByHead(pairs);
  // the common prefix [1, 2, 3] of pairs 0 and 1 is not used: each pair keeps its own split
  assert.deepEqual(indices, [[0, 1, 4], [2], [3]]);
  assert.deepEqual(groups[0]?.prefix, [1, 2]);
  assert.deepEqual(groups[0]?.tails, [[3, 4], [3, 5, 6], [7]]);
  assert.deepEqual(groups[1]?.prefix, [9]);
  assert.deepEqual(groups[1]?.tails, [[9]]);
  assert.deepEqual(groups[2]?.prefix, [1, 2, 3]);
  groups.forEach((g, gi) => g.tails.forEach((t, ti) => assert.deepEqual([...g.prefix, ...t], pairs[indices[gi]?.[ti] ?? -1]?.tokens)));
});
