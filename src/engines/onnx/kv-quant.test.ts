import assert from "node:assert/strict";
import { test } from "node:test";
import { dequantizeRow, keyStats, quantizeRows } from "./kv-quant.js";

const [heads, channels] = [2, 128];
const row = heads * channels;

/** Seeded uniform numbers in [-1, 1) (a small LCG: reproducible, no dependency). */
function numbers(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

/** Keys as trained LLMs have them: a few channels 30x the rest in every token, one with an offset of 20. */
function keys(tokens: number, seed: number, spread = 1): Float32Array {
  const next = numbers(seed);
  const k = new Float32Array(tokens * row);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      for (let c = 0; c < channels; c++) {
        const big = c === 5 || c === 77 ? 30 : 1;
        k[t * row + h * channels + c] = next() * big * spread + (c === 9 ? 20 : 0);
      }
    }
  }
  return k;
}

/** The largest error of q·k over `queries` random queries and every token, relative to the typical |q·k|. */
function scoreError(original: Float32Array, restored: (t: number) => Float32Array, tokens: number): number {
  const next = numbers(99);
  let worst = 0;
  let typical = 0;
  for (let n = 0; n < 8; n++) {
    const q = Float32Array.from({ length: channels }, () => next());
    for (let t = 0; t < tokens; t++) {
      const back = restored(t);
      for (let h = 0; h < heads; h++) {
        let exact = 0;
        let approx = 0;
        for (let c = 0; c < channels; c++) {
          exact += (q[c] ?? 0) * (original[t * row + h * channels + c] ?? 0);
          approx += (q[c] ?? 0) * (back[h * channels + c] ?? 0);
        }
        worst = Math.max(worst, Math.abs(exact - approx));
        typical += Math.abs(exact);
      }
    }
  }
  return worst / (typical / (8 * tokens * heads));
}

test("keys with channel outliers: centering and per-channel gains keep q·k several times closer than per-token scales alone", () => {
  const tokens = 80;
  const k = keys(tokens, 1);
  const stats = keyStats(k, tokens, heads, channels);
  assert.ok(Math.abs((stats.center[9] ?? 0) - 20) < 0.5, "the offset channel's center");
  assert.ok((stats.gain[5] ?? 0) > 20 && (stats.gain[6] ?? 0) < 1.5, "the outlier channel's gain");
  const [q8, plain8] = [new Int8Array(tokens * row), new Int8Array(tokens * row)];
  const [scales, plainScales] = [new Float32Array(tokens * heads), new Float32Array(tokens * heads)];
  quantizeRows(k, tokens, heads, channels, q8, scales, 0, stats);
  quantizeRows(k, tokens, heads, channels, plain8, plainScales, 0);
  const smoothed = scoreError(k, (t) => dequantizeRow(q8, scales, t, heads, channels, stats), tokens);
  const perToken = scoreError(k, (t) => dequantizeRow(plain8, plainScales, t, heads, channels), tokens);
  assert.ok(smoothed < perToken / 4, `smoothed ${smoothed.toFixed(4)} vs per-token ${perToken.toFixed(4)}`);
  assert.ok(smoothed < 0.02, `smoothed ${smoothed.toFixed(4)}`);
});

test("a later token larger than the head showed is not clipped: its own scale grows", () => {
  const head = keys(16, 2);
  const stats = keyStats(head, 16, heads, channels);
  const later = keys(4, 3, 5); // five times the head's spread
  const q8 = new Int8Array(20 * row);
  const scales = new Float32Array(20 * heads);
  quantizeRows(later, 4, heads, channels, q8, scales, 16, stats);
  for (let t = 0; t < 4; t++) {
    const back = dequantizeRow(q8, scales, 16 + t, heads, channels, stats);
    for (let i = 0; i < row; i++) {
      const exact = later[t * row + i] ?? 0;
      // Half a step of this token's scale, times the channel's gain.
      const step = (scales[(16 + t) * heads + Math.floor(i / channels)] ?? 0) * (stats.gain[i] ?? 0);
      assert.ok(Math.abs(exact - (back[i] ?? 0)) <= step / 2 + 1e-4 * Math.abs(exact), `token ${t} channel ${i}`);
    }
  }
});

test("values per token and head; a zero row stays zero", () => {
  const v = new Float32Array(2 * row);
  v.set(keys(1, 4).subarray(0, row), row);
  const q8 = new Int8Array(2 * row);
  const scales = new Float32Array(2 * heads);
  quantizeRows(v, 2, heads, channels, q8, scales, 0);
  assert.deepEqual([...dequantizeRow(q8, scales, 0, heads, channels)].every((x) => x === 0), true);
  const back = dequantizeRow(q8, scales, 1, heads, channels);
  for (let i = 0; i < row; i++) assert.ok(Math.abs((back[i] ?? 0) - (v[row + i] ?? 0)) <= (scales[heads + Math.floor(i / channels)] ?? 0) / 2 + 1e-6);
});
