import type { ModelShape } from "../../model/facts.js";
import type { KvCacheType } from "./options.js";

/** Bytes per KV element, block overhead included (q8_0: 34 bytes per 32 values). */
const kvElementBytes: Record<KvCacheType, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };

/** KV cache bytes per token of context: keys and values of every layer. */
export function kvBytesPerToken(shape: ModelShape, kvType: KvCacheType): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * kvElementBytes[kvType];
}

/** KV cache bytes an engine holds now: every sequence's whole context. */
export function heldKvBytes(shape: ModelShape, kvType: KvCacheType, capacity: { contextSize: number; sequences: number }): number {
  return kvBytesPerToken(shape, kvType) * capacity.contextSize * capacity.sequences;
}
