// IEEE-754 binary16 conversion. Node 20 has no Float16Array, and GGUF F16/Q8_0 data needs
// round-to-nearest-even exactly as ggml's GGML_FP32_TO_FP16 does, or the bytes differ.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Converts a float to binary16 bits with round-to-nearest-even (NaN stays NaN, overflow becomes Inf). */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const rounded = rem > mid || (rem === mid && (half & 1) === 1) ? half + 1 : half;
    return sign | rounded;
  }
  const half = mant >>> 13;
  const rem = mant & 0x1fff;
  let out = (e << 10) | half;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) out += 1; // may carry into the exponent: still correct
  e = out >>> 10;
  if (e >= 0x1f) return sign | 0x7c00;
  return sign | out;
}

/** Converts binary16 bits to a float. */
export function fromHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Converts a float to bfloat16 bits (the top half of its float32) with round-to-nearest-even, as PyTorch rounds. */
export function toBfloat16(value: number): number {
  f32[0] = value;
  const x = u32[0] ?? 0;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

let widened: Float32Array | undefined;

/** fromHalf of every binary16 bit pattern (float32 holds each exactly): a lookup where millions of weights are widened. */
export function halfTable(): Float32Array {
  widened ??= Float32Array.from({ length: 65536 }, (_, bits) => fromHalf(bits));
  return widened;
}

/** Converts bfloat16 bits to a float (exact: bfloat16 is a truncated float32). */
export function fromBfloat16(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0] ?? 0;
}
