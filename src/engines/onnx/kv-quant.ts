import type { ModelShape } from "../../model/facts.js";
import type { KvCacheType } from "./precision.js";

/**
 * The onnx engine's keys and values in 8 bits (int8 precision): a long pair's cache in about a
 * quarter of its fp32 bytes. Values are quantized per token and head (KIVI: values per token).
 * Keys are not quantized as they come: trained LLMs' keys carry a few channels tens of times larger
 * than the rest, in every token (SageAttention, KIVI), so one scale per token would round every
 * other channel to a few levels. Each (layer, head, channel) is first centered and divided by a
 * gain measured once per pair on its first run (the prompt head: system prompt, instruction and
 * query), then quantized per token and head: k = int8 * scale * gain + center. The gain only shapes
 * where the precision goes: a later token whose channel exceeds what the head showed raises its own
 * scale, so nothing is ever clipped. Centering is SageAttention's smoothing (a channel's common
 * offset costs no precision): the graph (graph.ts) compares queries, times the gain, with the
 * stored (k - center) / gain and drops q·center, the same for every key of a query, which softmax
 * does not see. Both are fixed per pair, so a pair's bits do not depend on what shares its batch.
 */

/** Bytes a pair of `tokens` keeps in the cache (every layer, keys and values, int8's scales included). */
export function cacheBytes(shape: ModelShape, type: KvCacheType, tokens: number): number {
  const perToken = shape.layers * 2 * shape.kvHeads * (type === "fp32" ? shape.headDim * 4 : shape.headDim + 4);
  return perToken * tokens;
}

/** Per (head, channel) of one layer: keys are stored as (k - center) / gain. */
export interface KeyStats {
  center: Float32Array;
  gain: Float32Array;
}

/**
 * A gain is at least this fraction of its head's mean gain: a channel that was flat in the head
 * but not later would otherwise be divided by ~0 and take every later token's scale for itself.
 */
const GAIN_FLOOR = 1 / 8;

/**
 * Center and gain of `tokens` keys laid out [token][head][channel] (`row` = heads × channels): the
 * mean over the tokens, and the largest distance from it (floored per head by GAIN_FLOOR).
 */
export function keyStats(keys: Float32Array, tokens: number, heads: number, channels: number): KeyStats {
  const row = heads * channels;
  const center = new Float32Array(row);
  const sum = new Float64Array(row);
  for (let t = 0; t < tokens; t++) for (let i = 0; i < row; i++) sum[i] = (sum[i] ?? 0) + (keys[t * row + i] ?? 0);
  for (let i = 0; i < row; i++) center[i] = (sum[i] ?? 0) / Math.max(1, tokens);
  const gain = new Float32Array(row);
  for (let t = 0; t < tokens; t++) {
    for (let i = 0; i < row; i++) gain[i] = Math.max(gain[i] ?? 0, Math.abs((keys[t * row + i] ?? 0) - (center[i] ?? 0)));
  }
  for (let h = 0; h < heads; h++) {
    let mean = 0;
    for (let c = 0; c < channels; c++) mean += gain[h * channels + c] ?? 0;
    const floor = Math.max((mean / channels) * GAIN_FLOOR, 1e-12);
    for (let c = 0; c < channels; c++) gain[h * channels + c] = Math.max(gain[h * channels + c] ?? 0, floor);
  }
  return { center, gain };
}

/**
 * Quantizes `tokens` rows of `src` ([token][head][channel]) into `out` and `scales` from token
 * `at` on: each (token, head) gets scale = max |x| / 127 and int8 round(x / scale), where x is the
 * key centered and divided by its gain (`stats`), or the value itself.
 */
export function quantizeRows(src: Float32Array, tokens: number, heads: number, channels: number, out: Int8Array, scales: Float32Array, at: number, stats?: KeyStats): void {
  const row = heads * channels;
  const x = new Float32Array(channels);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = t * row + h * channels;
      let max = 0;
      for (let c = 0; c < channels; c++) {
        const i = h * channels + c;
        const v = stats ? ((src[base + c] ?? 0) - (stats.center[i] ?? 0)) / (stats.gain[i] ?? 1) : (src[base + c] ?? 0);
        x[c] = v;
        max = Math.max(max, Math.abs(v));
      }
      const scale = max / 127;
      scales[(at + t) * heads + h] = scale;
      const target = (at + t) * row + h * channels;
      const inverse = scale > 0 ? 1 / scale : 0;
      for (let c = 0; c < channels; c++) out[target + c] = Math.round((x[c] ?? 0) * inverse);
    }
  }
}

/** The inverse of quantizeRows for one row (tests and references): what the graph reconstructs. */
export function dequantizeRow(q: Int8Array, scales: Float32Array, token: number, heads: number, channels: number, stats?: KeyStats): Float32Array {
  const row = heads * channels;
  const out = new Float32Array(row);
  for (let h = 0; h < heads; h++) {
    const scale = scales[token * heads + h] ?? 0;
    for (let c = 0; c < channels; c++) {
      const i = h * channels + c;
      const v = (q[token * row + i] ?? 0) * scale;
      out[i] = stats ? v * (stats.gain[i] ?? 1) + (stats.center[i] ?? 0) : v;
    }
  }
  return out;
}
