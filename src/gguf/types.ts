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

/** Elements per block and bytes per block of each supported ggml type. */
export const ggmlTypeLayout: Record<GgmlType, { blockSize: number; blockBytes: number }> = {
  [GgmlType.F32]: { blockSize: 1, blockBytes: 4 },
  [GgmlType.F16]: { blockSize: 1, blockBytes: 2 },
  [GgmlType.Q8_0]: { blockSize: 32, blockBytes: 34 },
};

export function ggmlTypeName(type: number): string {
  switch (type) {
    case GgmlType.F32:
      return "F32";
    case GgmlType.F16:
      return "F16";
    case GgmlType.Q8_0:
      return "Q8_0";
    default:
      return `ggml type ${type}`;
  }
}

export function tensorByteSize(type: GgmlType, elements: number): number {
  const { blockSize, blockBytes } = ggmlTypeLayout[type];
  if (elements % blockSize !== 0) throw new Error(`${elements} elements is not a whole number of ${ggmlTypeName(type)} blocks`);
  return (elements / blockSize) * blockBytes;
}
