import assert from "node:assert/strict";
import { test } from "node:test";
import { planStages } from "./graph.js";

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
