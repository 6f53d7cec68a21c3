import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { encodeRow as encodeInto } from "./quant.js";
import type { GgmlType } from "./types.js";
import { GgufValueType, tensorByteSize } from "./types.js";

/** A typed GGUF metadata value. Arrays hold one element type. */
export type GgufValue =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "i32[]"; value: ArrayLike<number> };

/** A tensor to write: ggml dims are [in, out] (ne0 first); rows are produced on demand. */
export interface TensorSpec {
  name: string;
  dims: readonly number[];
  type: GgmlType;
  /** Called once per row (ne0 elements), in order; fills `row` with the row's float values. */
  fillRow(rowIndex: number, row: Float32Array): void;
}

const ALIGNMENT = 32;

class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void {
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

function writeValue(sink: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case "u32":
      sink.u32(GgufValueType.UINT32);
      sink.u32(v.value);
      return;
    case "i32":
      sink.u32(GgufValueType.INT32);
      sink.i32(v.value);
      return;
    case "f32":
      sink.u32(GgufValueType.FLOAT32);
      sink.f32(v.value);
      return;
    case "bool":
      sink.u32(GgufValueType.BOOL);
      sink.push(Buffer.from([v.value ? 1 : 0]));
      return;
    case "string":
      sink.u32(GgufValueType.STRING);
      sink.str(v.value);
      return;
    case "string[]":
      sink.u32(GgufValueType.ARRAY);
      sink.u32(GgufValueType.STRING);
      sink.u64(v.value.length);
      for (const s of v.value) sink.str(s);
      return;
    case "i32[]": {
      sink.u32(GgufValueType.ARRAY);
      sink.u32(GgufValueType.INT32);
      sink.u64(v.value.length);
      const b = Buffer.alloc(v.value.length * 4);
      for (let i = 0; i < v.value.length; i++) b.writeInt32LE(v.value[i] ?? 0, i * 4);
      sink.push(b);
      return;
    }
  }
}

/** writeSync may write less than asked (a file-size limit reached mid-buffer): write the rest, or fail. */
export function writeAll(fd: number, data: Uint8Array, length = data.length): void {
  let done = 0;
  while (done < length) {
    const n = writeSync(fd, data, done, length - done);
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}

/**
 * Writes a file under a temporary name and renames it when `write` returns: the path only ever holds
 * a complete file, and a failure (a full disk, an error while producing the bytes) leaves nothing.
 */
export function writeAtomically(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.partial-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    write(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

const pad = (n: number): number => (ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT;

export interface WriteGgufOptions {
  /** Called after each chunk of tensor data with the bytes written so far and the total. Default: none. */
  onProgress?: ((written: number, total: number) => void) | undefined;
}

/**
 * Writes a GGUF v3 file. Tensor data is streamed row by row, so multi-GB models never sit in
 * memory; the file appears under its final name only when complete, and a failed write (a full
 * disk, a row that throws) leaves nothing behind.
 */
export function writeGguf(path: string, metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly TensorSpec[], options: WriteGgufOptions = {}): void {
  const head = new ByteSink();
  head.push(Buffer.from("GGUF", "latin1"));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.length);
  for (const [key, value] of metadata) {
    head.str(key);
    writeValue(head, value);
  }
  let offset = 0;
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    const size = tensorByteSize(t.type, t.dims.reduce((a, b) => a * b, 1));
    offset += size + pad(size);
  }
  head.push(Buffer.alloc(pad(head.length)));

  let written = 0;
  writeAtomically(path, (fd) => {
    writeAll(fd, head.toBuffer());
    for (const t of tensors) {
      const rowLen = t.dims[0] ?? 1;
      const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const rowBytes = tensorByteSize(t.type, rowLen);
      const rowsPerChunk = Math.max(1, Math.floor((8 << 20) / rowBytes));
      const chunk = new Uint8Array(rowsPerChunk * rowBytes);
      const row = new Float32Array(rowLen);
      for (let r = 0; r < rows; r += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - r);
        for (let i = 0; i < n; i++) {
          t.fillRow(r + i, row);
          encodeInto(t.type, row, chunk, i * rowBytes);
        }
        writeAll(fd, chunk, n * rowBytes);
        written += n * rowBytes;
        options.onProgress?.(written, offset);
      }
      const total = rowBytes * rows;
      if (pad(total) > 0) writeAll(fd, Buffer.alloc(pad(total)));
      written += pad(total);
    }
  });
}
