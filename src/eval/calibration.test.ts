import assert from "node:assert/strict";
import { test } from "node:test";
import { uniformStream } from "../testmodel/rng.js";
import { brier, expectedCalibrationError, fitCalibration, logLoss, MAX_TEMPERATURE, reliability } from "./calibration.js";
import { pairedTest } from "./significance.js";

/** Labels drawn from sigmoid(z / T + b): the fit must recover T and b. */
function synthetic(n: number, temperature: number, bias: number, seed = 7) {
  const random = uniformStream(seed);
  const logits = new Float64Array(n);
  const labels = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = (random() - 0.5) * 16;
    logits[i] = z;
    labels[i] = random() < 1 / (1 + Math.exp(-(z / temperature + bias))) ? 1 : 0;
  }
  return { logits, labels };
}

test("fitCalibration recovers the temperature and bias that generated the labels", () => {
  const { logits, labels } = synthetic(20_000, 2.5, -1);
  const fit = fitCalibration(logits, labels);
  assert.ok(Math.abs(fit.temperature - 2.5) < 0.15, `T ${fit.temperature}`);
  assert.ok(Math.abs(fit.bias + 1) < 0.1, `bias ${fit.bias}`);
  assert.equal(fit.clamped, false);
  const before = { temperature: 1, bias: 0 };
  assert.ok(logLoss(logits, labels, fit) < logLoss(logits, labels, before));
  assert.ok(expectedCalibrationError(logits, labels, fit) < expectedCalibrationError(logits, labels, before));
  assert.ok(brier(logits, labels, fit) < brier(logits, labels, before));
  const noBias = fitCalibration(logits, labels, false);
  assert.equal(noBias.bias, 0);
  assert.ok(logLoss(logits, labels, noBias) >= logLoss(logits, labels, fit) - 1e-12);
});

test("fitCalibration clamps the temperature when scores rank against the labels", () => {
  const logits = Float64Array.from([3, 2, 1, -1, -2, -3]);
  const labels = Float64Array.from([0, 0, 0, 1, 1, 1]);
  const fit = fitCalibration(logits, labels);
  assert.equal(fit.clamped, true);
  assert.ok(Math.abs(fit.temperature - MAX_TEMPERATURE) < 1e-9);
  assert.ok(Number.isFinite(fit.bias));
});

test("reliability bins and ECE on a hand-computed case", () => {
  // z = 0 gives score 0.5 (bin 5 of 10); two documents there, one relevant: perfectly calibrated.
  const bins = reliability([0, 0], [1, 0], { temperature: 1, bias: 0 });
  assert.equal(bins[5]?.count, 2);
  assert.equal(bins[5]?.accuracy, 0.5);
  assert.equal(expectedCalibrationError([0, 0], [1, 0], { temperature: 1, bias: 0 }), 0);
  // Huge z gives score 1, which lands in the last bin; label 0 makes the error 1.
  assert.ok(Math.abs(expectedCalibrationError([50], [0], { temperature: 1, bias: 0 }) - 1) < 1e-12);
  assert.ok(Math.abs(logLoss([0], [1], { temperature: 1, bias: 0 }) - Math.log(2)) < 1e-12);
});

test("pairedTest: t-test against a hand computation, randomisation test bounds", () => {
  const a = [0.1, 0.2, 0.3, 0.4, 0.5];
  const b = [0.2, 0.25, 0.5, 0.45, 0.6];
  const r = pairedTest(a, b);
  const d = [0.1, 0.05, 0.2, 0.05, 0.1];
  const mean = d.reduce((s, x) => s + x, 0) / 5;
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / 4);
  assert.ok(Math.abs(r.meanDelta - mean) < 1e-12);
  assert.ok(Math.abs(r.t - mean / (sd / Math.sqrt(5))) < 1e-9);
  // t = 3.651 with 4 degrees of freedom: two-sided p = 0.0217 (between the 0.05 and 0.02 table values 2.776 and 3.747).
  assert.ok(Math.abs(r.pTTest - 0.0217) < 5e-4, `p ${r.pTTest}`);
  // All five deltas are positive: only 2 of 32 sign patterns are as extreme, p = 1/16.
  assert.ok(Math.abs(r.pRandomisation - 1 / 16) < 0.01, `p ${r.pRandomisation}`);
  const same = pairedTest(a, a);
  assert.equal(same.pTTest, 1);
  assert.equal(same.pRandomisation, 1);
});
