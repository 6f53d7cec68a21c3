import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_RUN_SCORE_BYTES, MIN_RUN, runLength, runPlan, TAIL_FOLD } from "./run-plan.js";

test("a long document's runs: batchSize tokens until one run's scores would pass the budget, then shorter, never under 64", () => {
  const budget = DEFAULT_RUN_SCORE_BYTES;
  const sum = (runs: number[]) => runs.reduce((a, b) => a + b, 0);
  // Runs of 512 as before the budget while the past is under 15,872 tokens on the 0.6B shape (16 heads), 7,680 on the 8B (32).
  assert.ok(runPlan(0, 15872 + 512, 512, 16, budget).every((r) => r === 512));
  assert.ok(runPlan(0, 7680 + 512, 512, 32, budget).every((r) => r === 512));
  assert.ok(runPlan(0, 7680 + 1024, 512, 32, budget).some((r) => r < 512));
  // The 8B shape (32 heads) at 32k tokens: every run's scores under the budget, the last ones shorter.
  const runs = runPlan(90, 32001, 512, 32, budget);
  assert.equal(sum(runs), 32001);
  let past = 90;
  for (const r of runs) {
    assert.ok(r >= MIN_RUN || past + r === 90 + 32001, `run of ${r}`);
    assert.ok(4 * 32 * r * (past + r) <= budget, `run of ${r} after ${past}`);
    past += r;
  }
  assert.equal(runs[0], 512);
  assert.ok((runs.at(-2) ?? 0) < 512 && (runs.at(-2) ?? 0) >= MIN_RUN);
  // A budget too small for even the shortest run still makes progress, MIN_RUN at a time; and a batch smaller than MIN_RUN is kept.
  assert.equal(runLength(100_000, 512, 32, 1), MIN_RUN);
  assert.equal(runLength(100_000, 16, 32, 1), 16);
  assert.deepEqual(runPlan(0, 100, 512, 16, budget), [100]);
});

test("a document's last piece of at most a quarter of a run joins the run before it, within the budget", () => {
  const budget = DEFAULT_RUN_SCORE_BYTES;
  assert.equal(TAIL_FOLD, 4);
  // A 512-token chunk with its prompt's end: one run, not 512 + 13.
  assert.deepEqual(runPlan(80, 525, 512, 16, budget), [525]);
  assert.deepEqual(runPlan(80, 512 + 128, 512, 16, budget), [640]);
  assert.deepEqual(runPlan(80, 512 + 129, 512, 16, budget), [512, 129]);
  // A long document: only its last piece folds.
  assert.deepEqual(runPlan(80, 4096 + 13, 512, 16, budget), [512, 512, 512, 512, 512, 512, 512, 525]);
  // Not past the budget: a tail whose run would hold more scores than it stays a run of its own.
  const tight = 4 * 16 * 512 * (80 + 512);
  assert.deepEqual(runPlan(80, 525, 512, 16, tight), [512, 13]);
});
