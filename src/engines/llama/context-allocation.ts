import bytes from "bytes";
import type { CustomBatchingPrioritizationStrategy, LlamaContext, LlamaModel } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import type { ContextShape, EngineInfo } from "../engine.js";
import { memoryRoom } from "../memory-room.js";
import { rankPoolingContextOptions } from "./internals.js";
import { describeShape, isMemoryError } from "./memory-ladder.js";
import type { KvCacheType } from "./options.js";

// Creating a llama.cpp context that fits: the first shape of a memory ladder that llama.cpp can
// allocate and that leaves the process its reserve.

const kvTypeName: Record<KvCacheType, string> = { f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0", q4_0: "Q4_0" };

/**
 * One sequence's tokens per llama_decode. node-llama-cpp's default strategy packs the pending
 * tokens of every sequence into one batch, and llama.cpp then splits that batch into ubatches
 * whose shapes depend on the other sequences; its kernels round differently for different
 * shapes (CPU flash attention takes another path for more query rows), so a pair's log-odds would
 * depend on its neighbours. Decoding one sequence at a time keeps every pair's computation a
 * function of its own tokens; a long input is still cut into batch-size chunks from its start.
 */
const oneSequencePerDecode: CustomBatchingPrioritizationStrategy = ({ items, size }) => {
  const first = items[0];
  return first ? [{ item: first, processAmount: Math.min(first.tokens.length, size) }] : [];
};

/** The settings of every context this engine creates, besides its shape. */
export interface ContextSettings {
  scoringPath: EngineInfo["scoringPath"];
  threads: number;
  flashAttention: boolean;
  kvCacheType: KvCacheType;
  /** e.g. "cpu": the backend part of EngineInfo.numerics. */
  device: string;
  /** `memoryReserveBytes`: what a new context must leave the process. */
  reserveBytes: number;
  /** KV cache bytes per token of context (kv-bytes.ts), when the model's shape is known. */
  kvBytesPerToken?: number | undefined;
}


export const sameShape = (a: ContextShape, b: ContextShape) => a.contextSize === b.contextSize && a.sequences === b.sequences && a.batchSize === b.batchSize;

function createContext(model: LlamaModel, settings: ContextSettings, shape: ContextShape): Promise<LlamaContext> {
  return model.createContext({
    // node-llama-cpp keeps one cell free and shifts the context (erasing its beginning) when a
    // sequence would fill it: one extra cell lets a pair of exactly contextSize tokens fit.
    contextSize: shape.contextSize + 1,
    sequences: shape.sequences,
    batchSize: shape.batchSize,
    threads: settings.threads,
    flashAttention: settings.flashAttention,
    // The ladder below decides what to try next; node-llama-cpp must not shrink on its own.
    failedCreationRemedy: false,
    batching: { itemPrioritizationStrategy: oneSequencePerDecode },
    experimentalKvCacheKeyType: kvTypeName[settings.kvCacheType] as never,
    experimentalKvCacheValueType: kvTypeName[settings.kvCacheType] as never,
    ...(settings.scoringPath === "rank-pooling" ? rankPoolingContextOptions : {}),
  });
}

/**
 * Creates the first context of `ladder` that fits in memory and leaves the process its reserve.
 * `reason` says why the last configuration that did not fit failed (undefined when the first one fit).
 */
export async function allocateContext(
  model: LlamaModel,
  settings: ContextSettings,
  ladder: Iterable<ContextShape>,
): Promise<{ context: LlamaContext; shape: ContextShape; reason: string | undefined }> {
  let reason: string | undefined;
  let asked: ContextShape | undefined;
  let last: ContextShape | undefined;
  for (const shape of ladder) {
    asked ??= shape;
    last = shape;
    // On the CPU a shape whose keys and values alone would leave less than the reserve is not
    // tried: llama.cpp allocating into the last few MB fails in places it cannot recover from
    // (an abort in ggml_init, seen under `ulimit -d`), not only in the KV allocation it reports.
    const kvBytes = settings.device === "cpu" && settings.kvBytesPerToken ? settings.kvBytesPerToken * (shape.contextSize + 1) * shape.sequences : 0;
    const before = kvBytes > 0 && settings.reserveBytes > 0 ? memoryRoom() : undefined;
    if (before && kvBytes + settings.reserveBytes > before.bytes) {
      reason = `its keys and values need ${bytes.format(kvBytes)}, and ${bytes.format(before.bytes)} are free by ${before.limitedBy}, with a ${bytes.format(settings.reserveBytes)} reserve to keep (memoryReserveBytes)`;
      continue;
    }
    let context: LlamaContext;
    try {
      context = await createContext(model, settings, shape);
    } catch (error) {
      if (!isMemoryError(error)) {
        throw new RerankError("engine_unavailable", `cannot create a llama.cpp context (${describeShape(shape)}): ${(error as Error).message}`, { cause: error });
      }
      reason = (error as Error).message;
      continue;
    }
    const room = settings.reserveBytes > 0 ? memoryRoom() : undefined;
    if (room && room.bytes < settings.reserveBytes) {
      await context.dispose();
      reason = `it left ${bytes.format(room.bytes)} free by ${room.limitedBy}, under the ${bytes.format(settings.reserveBytes)} reserve (memoryReserveBytes)`;
      continue;
    }
    return { context, shape, reason };
  }
  throw new RerankError(
    "insufficient_memory",
    `not enough memory for a llama.cpp context of ${asked ? describeShape(asked) : "any size"}` +
      (last && asked && !sameShape(last, asked) ? `, nor for one as small as ${describeShape(last)}` : "") +
      `: ${reason ?? "no configuration to try"}. Lower max_length, sequences or batch size, or use --kv-cache-type q8_0.`,
  );
}
