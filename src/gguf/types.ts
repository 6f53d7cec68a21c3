/** GGUF metadata value types (gguf.md, version 3). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** The ggml tensor types this project writes and reads. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/**
 * Block layout of the ggml types found in Qwen3 GGUFs: [name, elements per block, bytes per block].
 * The writer produces F32/F16/Q8_0; the other rows let readers locate rows of quantised files.
 */
const layouts: Record<number, readonly [string, number, number]> = {
  0: ["F32", 1, 4],
  1: ["F16", 1, 2],
  2: ["Q4_0", 32, 18],
  3: ["Q4_1", 32, 20],
  6: ["Q5_0", 32, 22],
  7: ["Q5_1", 32, 24],
  8: ["Q8_0", 32, 34],
  10: ["Q2_K", 256, 84],
  11: ["Q3_K", 256, 110],
  12: ["Q4_K", 256, 144],
  13: ["Q5_K", 256, 176],
  14: ["Q6_K", 256, 210],
  30: ["BF16", 1, 2],
};

/** Bytes of `elements` values of a ggml type, or undefined for an unknown type or a partial block. */
export function byteSizeOf(type: number, elements: number): number | undefined {
  const layout = layouts[type];
  if (!layout || elements % layout[1] !== 0) return undefined;
  return (elements / layout[1]) * layout[2];
}

export function tensorByteSize(type: GgmlType, elements: number): number {
  const size = byteSizeOf(type, elements);
  if (size === undefined) throw new Error(`${elements} elements is not a whole number of ${layouts[type]?.[0] ?? `type ${type}`} blocks`);
  return size;
}
