import assert from "node:assert/strict";
import { test } from "node:test";
import { buildWorkload } from "./workload.js";

test("workload: the same documents for every query; distinct queries, the first the classic one", () => {
  const words = (t: string) => t.split(" ").length;
  const one = buildWorkload({ count: 3, tokens: 20, seed: 7 }, words);
  const four = buildWorkload({ count: 3, tokens: 20, seed: 7, queries: 4 }, words);
  assert.deepEqual(one.queries, [one.query]);
  assert.equal(four.queries.length, 4);
  assert.equal(new Set(four.queries).size, 4);
  assert.equal(four.queries[0], one.query);
  assert.deepEqual(four.documents, one.documents);
  assert.ok(one.documents.every((d) => words(d) >= 20));
});
