import { createHash } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { basename } from "node:path";
import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";

// A CommonJS package: its namespace comes as the default export.
const { onnx } = onnxProto;

/** Where a graph's initializers (its weights and constants) go as the graph is built. */
export interface InitializerSink {
  /** The initializer's entry in the model: its bytes inline, or where they were written. */
  place(name: string, dataType: number, dims: number[], data: Uint8Array): proto.ITensorProto;
}

/** Every initializer inside the model's own bytes (what a graph kept only in memory needs). */
export const inlineInitializers: InitializerSink = {
  place: (name, dataType, dims, data) => ({ name, dataType, dims, rawData: data }),
};

/**
 * ONNX Runtime memory-maps an external initializer whose offset is a multiple of the allocation
 * granularity (4 KiB on Linux, 64 KiB on Windows) instead of reading it into a copy: so every one
 * of at least 64 KiB starts at a multiple of 64 KiB (smaller ones are read, where padding would cost
 * more than the copy).
 */
const ALIGNMENT = 64 * 1024;
/** Below this an initializer stays inline in the model (scalars, shapes). */
const EXTERNAL_MIN_BYTES = 1024;
const zeros = new Uint8Array(ALIGNMENT);

/**
 * Appends large initializers to one data file as they are built (the graph never holds them), and
 * refers to them from the model by location, offset and length, ONNX's external-data format.
 */
export class ExternalInitializers implements InitializerSink {
  private readonly fd: number;
  private readonly hash = createHash("sha256");
  private offset = 0;

  constructor(private readonly path: string) {
    this.fd = openSync(path, "w");
  }

  place(name: string, dataType: number, dims: number[], data: Uint8Array): proto.ITensorProto {
    if (data.byteLength < EXTERNAL_MIN_BYTES) return inlineInitializers.place(name, dataType, dims, data);
    const pad = data.byteLength < ALIGNMENT ? 0 : (ALIGNMENT - (this.offset % ALIGNMENT)) % ALIGNMENT;
    if (pad > 0) this.write(zeros.subarray(0, pad));
    const offset = this.offset;
    this.write(data);
    return {
      name,
      dataType,
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: basename(this.path) },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(data.byteLength) },
      ],
    };
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.offset;
  }

  /** The sha256 of the file as written (taken as it is written: the file is not read again). */
  sha256(): string {
    return this.hash.digest("hex");
  }

  private write(bytes: Uint8Array): void {
    // writeSync may write less than asked (a signal, a nearly full disk); a full disk throws ENOSPC.
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(this.fd, bytes, done, bytes.byteLength - done);
    this.hash.update(bytes);
    this.offset += bytes.byteLength;
  }
}
