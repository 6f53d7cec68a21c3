import assert from "node:assert/strict";
import { test } from "node:test";
import { GgmlType } from "../../gguf/types.js";
import type { WeightMatrix } from "./weights.js";
import { coarseFeatures, inputFeatureRows, inputRowMax, toInt8PerColumn } from "./weights.js";

/** An F32 matrix of `rows` output features by `cols` input features, value(r, c). */
function matrix(name: string, rows: number, cols: number, value: (r: number, c: number) => number): WeightMatrix {
  const data = Float32Array.from({ length: rows * cols }, (_, i) => value(Math.floor(i / cols), i % cols));
  return { name, rows, cols, type: GgmlType.F32, bytes: new Uint8Array(data.buffer) };
}

/** Deterministic values spread like random weights (no two features alike). */
const noise = (r: number, c: number) => Math.sin(r * 12.9898 + c * 78.233) * 0.02;

const coarse = (matrices: WeightMatrix[], limit = 16) => {
  const rowMax = inputRowMax(matrices);
  return coarseFeatures(
    matrices.map((m) => toInt8PerColumn(m, rowMax)),
    limit,
  );
};

test("coarse features: none in ordinary weights, nor in a feature whose weights are all scaled alike", () => {
  assert.deepEqual(coarse([matrix("a", 96, 64, noise)]), []);
  // A damped feature (every weight 60x smaller): equalization undoes it exactly.
  assert.deepEqual(coarse([matrix("a", 96, 64, (r, c) => (c === 5 ? noise(r, c) / 60 : noise(r, c)))]), []);
});

test("coarse features: a feature whose weights mix a few large ones with ordinary ones, worst first, at most the limit", () => {
  // Feature 7 is read with weight 1 by four outputs of the second matrix (as the key-outlier
  // generator plants it), feature 3 likewise but less so; the first matrix reads both ordinarily.
  const q = matrix("q", 64, 48, noise);
  const k = matrix("k", 32, 48, (r, c) => (c === 7 && r < 4 ? 1 : c === 3 && r < 2 ? 0.5 : noise(r, c)));
  assert.deepEqual(coarse([q, k]), [7, 3]);
  assert.deepEqual(coarse([q, k], 1), [7]);
  assert.deepEqual(coarse([q, k], 0), []);
});

test("a feature's exact rows: every output's weight on it, unquantized and not equalized", () => {
  const m = matrix("m", 3, 4, (r, c) => r * 10 + c);
  assert.deepEqual([...inputFeatureRows(m, [2, 0])], [2, 12, 22, 0, 10, 20]);
});
