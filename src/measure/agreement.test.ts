import assert from "node:assert/strict";
import { test } from "node:test";
import { agreement, kendallTau, missedBars } from "./agreement.js";

test("Kendall's tau-b: 1 for the same order, -1 reversed, known value with one swap", () => {
  assert.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(kendallTau([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // One adjacent swap among 4: 5 concordant, 1 discordant of 6 pairs.
  assert.ok(Math.abs(kendallTau([1, 2, 3, 4], [1, 3, 2, 4]) - 4 / 6) < 1e-12);
});

test("agreement: |dz| max and p99, top-10 overlap", () => {
  const reference = Array.from({ length: 20 }, (_, i) => i);
  const z = reference.map((v, i) => (i === 19 ? 0.5 : v + 0.01));
  const a = agreement(z, reference);
  assert.ok(Math.abs(a.maxAbsDz - 18.5) < 1e-12);
  assert.ok(Math.abs(a.p99AbsDz - 18.5) < 1e-12, "p99 of 20 values is the largest");
  assert.equal(a.top10Overlap, 9, "the top document fell out of the top 10");
  assert.ok(a.kendallTau < 1);
});

test("the bars: each missed one is named; fewer than 10 documents need all but 2 of them in the top", () => {
  assert.deepEqual(missedBars({ maxAbsDz: 0.3, p99AbsDz: 0.2, kendallTau: 0.95, top10Overlap: 8 }, 32), []);
  assert.deepEqual(missedBars({ maxAbsDz: 0.6, p99AbsDz: 0.2, kendallTau: 0.85, top10Overlap: 7 }, 32), ["max |dz| 0.600 > 0.5", "Kendall tau 0.850 < 0.9", "top-10 overlap 7 < 8"]);
  assert.deepEqual(missedBars({ maxAbsDz: 0.1, p99AbsDz: 0.1, kendallTau: 1, top10Overlap: 4 }, 6), []);
  assert.deepEqual(missedBars({ maxAbsDz: Number.NaN, p99AbsDz: 0, kendallTau: 1, top10Overlap: 6 }, 6), ["max |dz| NaN > 0.5"]);
});
