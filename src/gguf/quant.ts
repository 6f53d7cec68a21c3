import { fromHalf, toHalf } from "./half.js";
import { GgmlType } from "./types.js";

/**
 * Encodes one row of floats into `out` (at `offset`) in the given ggml type; returns the bytes written.
 * Q8_0 follows ggml's quantize_row_q8_0_ref: d = amax/127 stored as f16, q = roundf(x / d).
 */
export function encodeRow(type: GgmlType, row: Float32Array, out: Uint8Array, offset: number): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (type === GgmlType.F32) {
    for (let i = 0; i < row.length; i++) view.setFloat32(offset + i * 4, row[i] ?? 0, true);
    return row.length * 4;
  }
  if (type === GgmlType.F16) {
    for (let i = 0; i < row.length; i++) view.setUint16(offset + i * 2, toHalf(row[i] ?? 0), true);
    return row.length * 2;
  }
  let pos = offset;
  for (let b = 0; b < row.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(row[b + j] ?? 0));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(pos, toHalf(d), true);
    for (let j = 0; j < 32; j++) {
      const x = Math.fround((row[b + j] ?? 0) * id);
      view.setInt8(pos + 2 + j, x < 0 ? -Math.round(-x) : Math.round(x));
    }
    pos += 34;
  }
  return pos - offset;
}

/** Decodes `count` elements of the given ggml type starting at byte `offset` into float64s. */
export function decodeElements(type: number, bytes: Uint8Array, offset: number, count: number): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  if (type === GgmlType.F32) {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + i * 4, true);
  } else if (type === GgmlType.F16) {
    for (let i = 0; i < count; i++) out[i] = fromHalf(view.getUint16(offset + i * 2, true));
  } else if (type === GgmlType.Q8_0) {
    for (let b = 0; b < count; b += 32) {
      const pos = offset + (b / 32) * 34;
      const d = fromHalf(view.getUint16(pos, true));
      for (let j = 0; j < 32; j++) out[b + j] = d * view.getInt8(pos + 2 + j);
    }
  } else {
    throw new Error(`cannot decode ggml type ${type}`);
  }
  return out;
}
