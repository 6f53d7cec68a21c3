import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { basename } from "node:path";
import { fromHalf } from "../gguf/half.js";
import { RerankError } from "../errors/errors.js";

/**
 * The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
 * of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}`, then the
 * data, offsets relative to its start, row-major.
 */

/** The element types this project reads; the checkpoints of the Qwen3 family are BF16. */
export type FloatDtype = "BF16" | "F16" | "F32";
export const ELEMENT_BYTES: Record<FloatDtype, number> = { BF16: 2, F16: 2, F32: 4 };
const isFloatDtype = (d: string): d is FloatDtype => d in ELEMENT_BYTES;

/** One tensor of one shard file, located in the file. */
export interface SafetensorsTensor {
  name: string;
  dtype: FloatDtype;
  shape: number[];
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  start: number;
  byteLength: number;
}

// The reference implementation refuses headers over 100 MB (a corrupt length would otherwise allocate gigabytes).
const MAX_HEADER_BYTES = 100_000_000;

const bad = (file: string, what: string): RerankError => new RerankError("model_unsupported", `${basename(file)} is not a valid safetensors file: ${what}`);

/** Reads and checks a shard's header: every tensor's dtype, shape and extent (the data itself is read later, row by row). */
export function readSafetensorsHeader(file: string): SafetensorsTensor[] {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const lengthBytes = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lengthBytes, 0, 8, 0) < 8) throw bad(file, `${size} bytes is shorter than the 8-byte header length`);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength > MAX_HEADER_BYTES) throw bad(file, `header length ${headerLength} is over ${MAX_HEADER_BYTES} bytes`);
    if (8 + headerLength > size) throw bad(file, `the header needs ${headerLength} bytes but the file has ${size - 8} after the length (truncated?)`);
    const headerBytes = Buffer.alloc(headerLength);
    readSync(fd, headerBytes, 0, headerLength, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString("utf8"));
    } catch (error) {
      throw bad(file, `its header is not JSON (${error instanceof Error ? error.message : String(error)})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) throw bad(file, "its header is not a JSON object");
    const dataStart = 8 + headerLength;
    const tensors: SafetensorsTensor[] = [];
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") continue;
      const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof dtype !== "string" || !Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) throw bad(file, `tensor ${name} lacks dtype, shape or data_offsets`);
      if (!isFloatDtype(dtype)) {
        throw new RerankError("model_unsupported", `tensor ${name} in ${basename(file)} has dtype ${dtype}; qwen-rerank reads BF16, F16 and F32 checkpoints (quantized checkpoints are not read)`);
      }
      const dims = shape.map(Number);
      const [begin, end] = offsets.map(Number) as [number, number];
      if (dims.some((d) => !Number.isInteger(d) || d < 0) || !Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin) throw bad(file, `tensor ${name} has a malformed shape or data_offsets`);
      const byteLength = dims.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[dtype];
      if (end - begin !== byteLength) throw bad(file, `tensor ${name} (${dtype} ${JSON.stringify(dims)}) needs ${byteLength} bytes, data_offsets give ${end - begin}`);
      if (dataStart + end > size) throw bad(file, `tensor ${name} ends at byte ${dataStart + end}, past the end of the file (${size} bytes; truncated?)`);
      tensors.push({ name, dtype, shape: dims, file, start: dataStart + begin, byteLength });
    }
    return tensors;
  } finally {
    closeSync(fd);
  }
}

// bf16 and f16 decode through a table: 65,536 entries make conversion of an 8B checkpoint a table lookup per weight.
let halfTable: Float32Array | undefined;
const halves = (): Float32Array => {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = fromHalf(i);
  }
  return halfTable;
};

/**
 * Reads a 1-D or 2-D tensor row by row, in order, through a buffer of a few MB: a tensor of any
 * size costs that buffer, never its own size. `row(r, out)` must be called with r = 0, 1, 2, ...
 */
export class RowReader {
  private readonly fd: number;
  private readonly rowBytes: number;
  private readonly rows: number;
  private readonly buffer: Buffer;
  private readonly rowsPerChunk: number;
  private chunkFirst = -1;
  private chunkRows = 0;

  constructor(readonly tensor: SafetensorsTensor, chunkBytes = 4 << 20) {
    if (endianness() !== "LE") throw new RerankError("engine_unavailable", "reading safetensors needs a little-endian machine");
    const cols = tensor.shape.at(-1) ?? 1;
    this.rows = tensor.shape.length > 1 ? tensor.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
    this.rowBytes = cols * ELEMENT_BYTES[tensor.dtype];
    this.rowsPerChunk = Math.max(1, Math.floor(chunkBytes / Math.max(1, this.rowBytes)));
    this.buffer = Buffer.alloc(Math.min(this.rowsPerChunk, this.rows) * this.rowBytes);
    this.fd = openSync(tensor.file, "r");
  }

  row(r: number, out: Float32Array): void {
    if (r < this.chunkFirst || r >= this.chunkFirst + this.chunkRows) {
      this.chunkFirst = r;
      this.chunkRows = Math.min(this.rowsPerChunk, this.rows - r);
      const want = this.chunkRows * this.rowBytes;
      const got = readSync(this.fd, this.buffer, 0, want, this.tensor.start + r * this.rowBytes);
      if (got < want) throw bad(this.tensor.file, `tensor ${this.tensor.name} ended early (read ${got} of ${want} bytes)`);
    }
    const at = (r - this.chunkFirst) * this.rowBytes;
    // Typed views (the machine is little-endian, as the format): several times faster than DataView reads.
    if (this.tensor.dtype === "F32") {
      out.set(new Float32Array(this.buffer.buffer, this.buffer.byteOffset + at, out.length));
      return;
    }
    const bits = new Uint16Array(this.buffer.buffer, this.buffer.byteOffset + at, out.length);
    if (this.tensor.dtype === "F16") {
      const table = halves();
      for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] ?? 0] ?? 0;
    } else {
      const wide = new Uint32Array(out.buffer, out.byteOffset, out.length);
      for (let i = 0; i < bits.length; i++) wide[i] = (bits[i] ?? 0) << 16;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}
