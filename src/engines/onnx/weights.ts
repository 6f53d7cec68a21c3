import { closeSync, openSync, readSync } from "node:fs";
import type { GgufFileInfo } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import { halfTable } from "../../gguf/half.js";
import { GgmlType } from "../../gguf/types.js";

/** The GGUF tensor types the onnx engine reads (others are refused by name). */
const READABLE: Record<number, { name: string; block: number; bytes: number }> = {
  0: { name: "F32", block: 1, bytes: 4 },
  1: { name: "F16", block: 1, bytes: 2 },
  2: { name: "Q4_0", block: 32, bytes: 18 },
  8: { name: "Q8_0", block: 32, bytes: 34 },
};

/** A 2-D weight as the file stores it: `rows` rows (output features) of `cols` values (input features). */
export interface WeightMatrix {
  name: string;
  rows: number;
  cols: number;
  type: number;
  /** The tensor's bytes, exactly as in the file. */
  bytes: Uint8Array;
}

/**
 * Reads the tensors of a Qwen3 GGUF from the file itself, with the offsets node-llama-cpp's parser
 * found. Only the onnx engine needs the bytes: llama.cpp memory-maps the file on its own.
 */
export class GgufWeights {
  private readonly tensors = new Map<string, NonNullable<GgufFileInfo["tensorInfo"]>[number]>();

  constructor(
    private readonly path: string,
    info: GgufFileInfo,
  ) {
    for (const t of info.tensorInfo ?? []) this.tensors.set(t.name, t);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The name of a tensor type in the file that the onnx engine cannot read (e.g. "Q4_K"), or undefined. */
  unreadableType(): string | undefined {
    for (const t of this.tensors.values()) if (!READABLE[Number(t.ggmlType)]) return typeName(Number(t.ggmlType));
    return undefined;
  }

  /** A 2-D tensor's shape without reading it. */
  shapeOf(name: string): { rows: number; cols: number } {
    const t = this.tensors.get(name);
    if (!t) throw new RerankError("model_unsupported", `the GGUF has no tensor ${name}; not a Qwen3 model`);
    return { cols: Number(t.dimensions[0] ?? 1), rows: t.dimensions.slice(1).reduce<number>((a, b) => a * Number(b), 1) };
  }

  /** A 1-D or 2-D tensor's bytes and shape (or `count` of its rows from `first`); an unsupported type is an error naming it. */
  matrix(name: string, first = 0, count?: number): WeightMatrix {
    const { type, cols, rows: all, rowBytes, fileOffset } = this.layout(name);
    const rows = count ?? all - first;
    if (first < 0 || first + rows > all) throw new RerankError("model_unsupported", `tensor ${name} has ${all} rows; row ${first + rows - 1} was asked for`);
    const length = rows * rowBytes;
    const bytes = new Uint8Array(length);
    const fd = openSync(this.path, "r");
    try {
      // readSync reads at most 2 GiB at a time.
      for (let done = 0; done < length; ) done += readSync(fd, bytes, done, Math.min(length - done, 1 << 30), fileOffset + first * rowBytes + done);
    } finally {
      closeSync(fd);
    }
    return { name, rows, cols, type, bytes };
  }

  /** A 2-D tensor's rows read from the file one at a time, as they are asked for (see TensorRows). */
  rows(name: string): TensorRows {
    const { type, cols, rows, rowBytes, fileOffset } = this.layout(name);
    return new TensorRows(this.path, { name, rows, cols, type }, fileOffset, rowBytes);
  }

  /** Where a tensor's rows are in the file and how they are packed; an unsupported type is an error naming it. */
  private layout(name: string): { type: number; cols: number; rows: number; rowBytes: number; fileOffset: number } {
    const t = this.tensors.get(name);
    if (!t) throw new RerankError("model_unsupported", `the GGUF has no tensor ${name}; not a Qwen3 model`);
    const type = Number(t.ggmlType);
    const spec = READABLE[type];
    if (!spec) throw new RerankError("model_unsupported", `tensor ${name} has ggml type ${typeName(type)}; the onnx engine reads F32, F16, Q8_0 and Q4_0 (use --engine llama, or requantize to Q8_0)`);
    const cols = Number(t.dimensions[0] ?? 1);
    const rows = t.dimensions.slice(1).reduce<number>((a, b) => a * Number(b), 1);
    return { type, cols, rows, rowBytes: (cols / spec.block) * spec.bytes, fileOffset: Number(t.fileOffset) };
  }
}

/**
 * One tensor's rows, each read from the file when asked for: the token embeddings, of which a run
 * needs a few hundred of 151,669 rows, so the table (0.16-0.66 GB from 0.6B to 8B in Q8_0) is
 * neither read at start nor held; the operating system's page cache keeps the rows in use.
 */
export class TensorRows {
  private fd: number | undefined;
  private readonly bytes: Uint8Array;
  private readonly one: WeightMatrix;

  constructor(
    private readonly path: string,
    readonly shape: Pick<WeightMatrix, "name" | "rows" | "cols" | "type">,
    private readonly fileOffset: number,
    private readonly rowBytes: number,
  ) {
    this.bytes = new Uint8Array(rowBytes);
    this.one = { ...shape, rows: 1, bytes: this.bytes };
  }

  /** Row `r` as float32 (into `out`). */
  row(r: number, out = new Float32Array(this.shape.cols)): Float32Array {
    // The tokenizer only makes ids the table has: another is a fault of ours, not of the input.
    if (!Number.isInteger(r) || r < 0 || r >= this.shape.rows) throw new RerankError("engine_failure", `internal: token id ${r} is outside ${this.shape.name}'s ${this.shape.rows} rows`);
    this.fd ??= openSync(this.path, "r");
    for (let done = 0; done < this.rowBytes; ) {
      const read = readSync(this.fd, this.bytes, done, this.rowBytes - done, this.fileOffset + r * this.rowBytes + done);
      if (read === 0) throw new RerankError("engine_failure", `${this.path} ended inside tensor ${this.shape.name} (was the file changed while it was in use?)`);
      done += read;
    }
    return decodeRow(this.one, 0, out);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function typeName(type: number): string {
  const names: Record<number, string> = { 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 16: "IQ2_XXS", 30: "BF16" };
  return names[type] ?? String(type);
}

/** Row `r` of a matrix as float32 (every readable type). */
export function decodeRow(m: WeightMatrix, r: number, out = new Float32Array(m.cols)): Float32Array {
  const view = new DataView(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
  const n = m.cols;
  const half = halfTable();
  if (m.type === GgmlType.F32) {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32((r * n + i) * 4, true);
  } else if (m.type === GgmlType.F16) {
    for (let i = 0; i < n; i++) out[i] = half[view.getUint16((r * n + i) * 2, true)] ?? 0;
  } else if (m.type === GgmlType.Q8_0) {
    const base = (r * n * 34) / 32;
    const values = new Int8Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
    for (let b = 0; b < n / 32; b++) {
      const pos = base + b * 34;
      const d = half[view.getUint16(pos, true)] ?? 0;
      for (let j = 0; j < 32; j++) out[b * 32 + j] = d * (values[pos + 2 + j] ?? 0);
    }
  } else if (m.type === 2) {
    // Q4_0: a half scale, then 16 bytes: low nibbles are values 0-15, high nibbles 16-31, offset 8.
    const base = (r * n * 18) / 32;
    for (let b = 0; b < n / 32; b++) {
      const pos = base + b * 18;
      const d = half[view.getUint16(pos, true)] ?? 0;
      for (let j = 0; j < 16; j++) {
        const q = m.bytes[pos + 2 + j] ?? 0;
        out[b * 32 + j] = d * ((q & 0x0f) - 8);
        out[b * 32 + j + 16] = d * ((q >> 4) - 8);
      }
    }
  } else {
    throw new RerankError("model_unsupported", `cannot decode ggml type ${typeName(m.type)}`);
  }
  return out;
}

/** The whole matrix as float32, transposed to [cols, rows] (ONNX MatMul's B: input features first). */
export function toFloat32Transposed(m: WeightMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) {
    decodeRow(m, r, row);
    for (let c = 0; c < m.cols; c++) out[c * m.rows + r] = row[c] ?? 0;
  }
  return out;
}

/** A vector (norm weights) as float32. */
export function toFloat32(m: WeightMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) out.set(decodeRow(m, r, row), r * m.cols);
  return out;
}

/**
 * MatMulNBits with 8 bits and blocks of 32 along the input features: Q8_0's own grouping. From a
 * Q8_0 tensor the packing is exact (the int8 values shifted by the default zero point 128, the
 * half scales widened); other types are quantized per block of 32 as Q8_0 would (round to nearest,
 * scale = max|w| / 127).
 */
export function toBlock8(m: WeightMatrix): { data: Uint8Array; scales: Float32Array; blocks: number } {
  if (m.cols % 32 !== 0) throw new RerankError("model_unsupported", `${m.name} has ${m.cols} columns, not a multiple of 32`);
  const blocks = m.cols / 32;
  const data = new Uint8Array(m.rows * m.cols);
  const scales = new Float32Array(m.rows * blocks);
  if (m.type === GgmlType.Q8_0) {
    const view = new DataView(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
    for (let b = 0; b < m.rows * blocks; b++) {
      const pos = b * 34;
      scales[b] = halfTable()[view.getUint16(pos, true)] ?? 0;
      for (let j = 0; j < 32; j++) data[b * 32 + j] = (view.getInt8(pos + 2 + j) + 128) & 0xff;
    }
    return { data, scales, blocks };
  }
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) {
    decodeRow(m, r, row);
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(row[b * 32 + j] ?? 0));
      const d = amax / 127;
      const id = d === 0 ? 0 : 1 / d;
      scales[r * blocks + b] = d;
      for (let j = 0; j < 32; j++) data[(r * blocks + b) * 32 + j] = Math.round((row[b * 32 + j] ?? 0) * id) + 128;
    }
  }
  return { data, scales, blocks };
}

/**
 * For each input feature (a column of the file's matrices, a row of ONNX's B), the largest |w| over
 * every matrix given (those that read the same input): the int8 path's equalization.
 */
export function inputRowMax(matrices: readonly WeightMatrix[]): Float32Array {
  const cols = matrices[0]?.cols ?? 0;
  const out = new Float32Array(cols);
  for (const m of matrices) {
    if (m.cols !== cols) throw new RerankError("model_unsupported", `${m.name} has ${m.cols} input features, ${matrices[0]?.name} ${cols}`);
    const row = new Float32Array(cols);
    for (let r = 0; r < m.rows; r++) {
      decodeRow(m, r, row);
      for (let c = 0; c < cols; c++) out[c] = Math.max(out[c] ?? 0, Math.abs(row[c] ?? 0));
    }
  }
  // A feature no weight reads: any positive value keeps the arithmetic finite.
  for (let c = 0; c < cols; c++) if (!(out[c] ?? 0)) out[c] = 1;
  return out;
}

/** An int8 product's B, and how coarsely each input feature's weights came out (coarseFeatures). */
export interface Int8Matrix {
  data: Int8Array;
  scales: Float32Array;
  /** Per input feature: the sum of its weights' squared rounding errors, and of their magnitudes (both after equalization). */
  errorSquares: Float64Array;
  magnitudes: Float64Array;
}

/**
 * The int8 products' B: int8 [cols, rows] with one scale per output feature (symmetric, scale =
 * max|w'| / 127), of the weights with input feature c divided by `equalize[c]` (every input row then
 * peaks at 1 and quantizes as finely as the others; the activations are multiplied by it instead).
 */
export function toInt8PerColumn(m: WeightMatrix, equalize: Float32Array): Int8Matrix {
  const data = new Int8Array(m.rows * m.cols);
  const scales = new Float32Array(m.rows);
  const errorSquares = new Float64Array(m.cols);
  const magnitudes = new Float64Array(m.cols);
  // Rows a tile: the transposed writes then fill TILE consecutive bytes per input feature instead of
  // one byte a cache line (same output as row by row: checked on a Q8_0 matrix of 150 rows).
  const TILE = 64;
  const tile = new Float32Array(TILE * m.cols);
  const row = new Float32Array(m.cols);
  const inverse = new Float64Array(TILE);
  for (let r0 = 0; r0 < m.rows; r0 += TILE) {
    const n = Math.min(TILE, m.rows - r0);
    for (let t = 0; t < n; t++) {
      decodeRow(m, r0 + t, row);
      let amax = 0;
      for (let c = 0; c < m.cols; c++) {
        const v = (row[c] ?? 0) / (equalize[c] ?? 1);
        tile[t * m.cols + c] = v;
        amax = Math.max(amax, Math.abs(v));
      }
      const d = amax / 127;
      scales[r0 + t] = d;
      inverse[t] = d === 0 ? 0 : 1 / d;
    }
    for (let c = 0; c < m.cols; c++) {
      const base = c * m.rows + r0;
      let errors = 0;
      let magnitude = 0;
      for (let t = 0; t < n; t++) {
        const v = tile[t * m.cols + c] ?? 0;
        const q = Math.round(v * (inverse[t] ?? 0));
        data[base + t] = q;
        const error = v - q * (scales[r0 + t] ?? 0);
        errors += error * error;
        magnitude += Math.abs(v);
      }
      errorSquares[c] = (errorSquares[c] ?? 0) + errors;
      magnitudes[c] = (magnitudes[c] ?? 0) + magnitude;
    }
  }
  return { data, scales, errorSquares, magnitudes };
}

/** How many times the median feature's relative rounding error makes a feature coarse. */
const COARSE_FACTOR = 4;

/**
 * The input features whose weights int8 rounds far more coarsely than the others', worst first,
 * at most `limit`: a feature's RMS rounding error over its mean weight magnitude (over every
 * product that reads the input), when above COARSE_FACTOR times the median feature's. Equalization
 * makes each feature's largest weight as fine as any, but a feature whose weights mix a few large
 * ones with many small ones (the way trained LLMs' massive activations meet their key weights)
 * keeps the small ones at a few int8 levels of their output's scale; its activation is large, so
 * that error moves every score. Those features are multiplied with their exact weights instead
 * (graph.ts). Random weights have none: the graph is then unchanged.
 */
export function coarseFeatures(products: readonly Int8Matrix[], limit: number): number[] {
  const cols = products[0]?.errorSquares.length ?? 0;
  const outputs = products.reduce((sum, p) => sum + p.scales.length, 0);
  const relative = Array.from({ length: cols }, (_, c) => {
    let errors = 0;
    let magnitude = 0;
    for (const p of products) {
      errors += p.errorSquares[c] ?? 0;
      magnitude += p.magnitudes[c] ?? 0;
    }
    return magnitude > 0 ? Math.sqrt(errors / outputs) / (magnitude / outputs) : 0;
  });
  const median = [...relative].sort((a, b) => a - b)[cols >> 1] ?? 0;
  return relative
    .map((r, c) => ({ r, c }))
    .filter(({ r }) => median > 0 && r > COARSE_FACTOR * median)
    .sort((a, b) => b.r - a.r)
    .slice(0, Math.max(0, limit))
    .map(({ c }) => c);
}

/** The weights that input features `features` meet, exactly: fp32 [features, rows] (a product's B rows, unquantized and not equalized). */
export function inputFeatureRows(m: WeightMatrix, features: readonly number[]): Float32Array {
  const out = new Float32Array(features.length * m.rows);
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) {
    decodeRow(m, r, row);
    for (const [j, c] of features.entries()) out[j * m.rows + r] = row[c] ?? 0;
  }
  return out;
}
