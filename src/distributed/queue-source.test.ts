import assert from "node:assert/strict";
import { test } from "node:test";
import { splitIntoJobs } from "./queue-source.js";

const pair = (n: number) => ({ tokens: new Array<number>(n).fill(1), headLength: 1, truncated: false });

test("jobs are cut by pairs and by tokens; a pair longer than the token bound is a job alone", () => {
  assert.deepEqual(splitIntoJobs([pair(10), pair(10), pair(10)], 2, 100), [[0, 1], [2]]);
  assert.deepEqual(splitIntoJobs([pair(60), pair(60), pair(500), pair(1)], 10, 100), [[0], [1], [2], [3]]);
  assert.deepEqual(splitIntoJobs([], 4, 100), []);
});
