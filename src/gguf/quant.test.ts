import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeElements, encodeRow } from "./quant.js";
import { GgmlType } from "./types.js";

test("Q8_0 blocks decode to within half a quantisation step", () => {
  const row = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * (i < 32 ? 1 : 0.01));
  const bytes = new Uint8Array(68);
  assert.equal(encodeRow(GgmlType.Q8_0, row, bytes, 0), 68);
  const back = decodeElements(GgmlType.Q8_0, bytes, 0, 64);
  for (let b = 0; b < 2; b++) {
    const amax = Math.max(...Array.from(row.subarray(b * 32, b * 32 + 32), Math.abs));
    for (let j = 0; j < 32; j++) assert.ok(Math.abs((back[b * 32 + j] ?? 0) - (row[b * 32 + j] ?? 0)) <= (amax / 127) * 0.51);
  }
});

test("F32 and F16 rows round-trip", () => {
  const row = Float32Array.from([0.5, -1.25, 3, 1e-3]);
  const f32 = new Uint8Array(16);
  encodeRow(GgmlType.F32, row, f32, 0);
  assert.deepEqual(Array.from(decodeElements(GgmlType.F32, f32, 0, 4)), Array.from(row));
  const f16 = new Uint8Array(8);
  encodeRow(GgmlType.F16, row, f16, 0);
  const back = decodeElements(GgmlType.F16, f16, 0, 4);
  row.forEach((v, i) => assert.ok(Math.abs((back[i] ?? 0) - v) < 1e-3 * Math.max(1, Math.abs(v))));
});
