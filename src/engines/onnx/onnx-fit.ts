import { ggufFileInfo } from "../../gguf/file-info.js";
import { readModelFacts } from "../llama/metadata.js";
import type { ModelShape } from "../../model/facts.js";
import type { KvCacheType, OnnxPrecision } from "./precision.js";
import { cacheBytes } from "./kv-quant.js";
import { runPlan } from "./run-plan.js";
import { GgufWeights } from "./weights.js";

/** Bytes of one layer's matrices in the graph (every layer has the same shapes). */
export function layerWeightBytes(weights: Pick<GgufWeights, "shapeOf">, precision: OnnxPrecision): number {
  const perWeight = precision === "fp32" ? 4 : precision === "block8" ? 1 + 4 / 32 : 1;
  let count = 0;
  for (const name of ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]) {
    const m = weights.shapeOf(`blk.0.${name}.weight`);
    count += m.rows * m.cols;
  }
  return count * perWeight;
}

/**
 * The most bytes of matrices (in the precision's form) for which ONNX Runtime packs the weights by
 * default. Its packed copy makes the products faster (8B shape: without it, scoring took 17-24%
 * longer with 256-token documents and ~30% with 512) but is a second copy of every matrix in
 * anonymous memory, written at every start (8B: a 6.5 GB copy, the engine's open 23-26 s against
 * 6-9 s, peak RSS 13.7 against 7.2 GB; AMD EPYC under Firecracker, docs/benchmarks.md). Under
 * this size (the 0.6B shape: 0.44 GB in int8) the copy costs a second or two and is kept; over it
 * (4B, 8B) the weights stay memory-mapped only.
 */
export const PACKED_WEIGHTS_UP_TO_BYTES = 2 * 2 ** 30;

/** Whether the engine lets ONNX Runtime pack its weights: as asked, else by PACKED_WEIGHTS_UP_TO_BYTES. */
export function packsWeights(matrixBytes: number, asked: boolean | undefined): boolean {
  return asked ?? matrixBytes <= PACKED_WEIGHTS_UP_TO_BYTES;
}

/**
 * The memory the onnx engine needs for a model before it scores anything: every layer's matrices
 * in the precision's form, held twice where ONNX Runtime keeps the initializer beside its packed
 * copy (int8 with packed weights: the outlier path gathers rows of the original), plus one stage's graph bytes in
 * flight while it is parsed, as when the graphs are built in memory (`stageBytes` each). The
 * embedding matrix is not held: its rows are read as they are needed (TensorRows in
 * src/engines/onnx/weights.ts).
 */
export function onnxMemoryEstimate(weights: Pick<GgufWeights, "shapeOf">, layers: number, precision: OnnxPrecision, stageBytes = DEFAULT_STAGE_BYTES, packedWeights?: boolean): number {
  const perLayer = layerWeightBytes(weights, precision);
  const copies = precision === "int8" && packsWeights(perLayer * layers, packedWeights) ? 2 : 1;
  const inFlight = 2 * Math.min(stageBytes, perLayer * layers);
  return perLayer * layers * copies + inFlight;
}

/** The default `stageBytes` of graphs built in memory: most weight bytes in one graph (protobuf caps one at 2 GB; cached graphs are one graph, or two halves, by default: graph.ts cachedPartsFor). */
export const DEFAULT_STAGE_BYTES = 1.5e9;

/**
 * Whether the onnx engine can run a GGUF file, from its header alone (what `bench` and
 * `engine: "auto"` check before loading anything): the memory it needs per precision
 * (onnxMemoryEstimate, with the weights packed as `packedWeights` asks, else by the default), whether
 * int8's weights are packed, and a tensor type it cannot read, if any.
 */
export async function onnxFit(path: string, packedWeights?: boolean): Promise<{ bytes: (precision: OnnxPrecision) => number; packedInt8: boolean; unreadable: string | undefined }> {
  const info = await ggufFileInfo(path);
  const weights = new GgufWeights(path, info);
  const layers = readModelFacts(info, 40960).shape?.layers ?? 0;
  return {
    bytes: (precision) => onnxMemoryEstimate(weights, layers, precision, undefined, packedWeights),
    packedInt8: packsWeights(layerWeightBytes(weights, "int8") * layers, packedWeights),
    unreadable: weights.unreadableType(),
  };
}

/**
 * How much more than a run's largest working set ONNX Runtime's CPU arena may hold: it grows by
 * regions that double in size and keeps them, and a long document's runs ask for ever larger
 * tensors. Measured over a 4,096-token document: 1.14x the estimate below on the 0.6B shape, 1.5x
 * on the 8B (docs/benchmarks.md).
 */
const ARENA_SLACK = 2;

/**
 * Memory a pair of `tokens` takes while it is evaluated in runs of up to `step` (shorter as the
 * past grows, run-plan.ts): its cache of keys and values once, as `kvCache` keeps it (the engine's
 * buffers; each run returns only its own), plus what one layer's attention holds at the last run
 * (the past dequantized, transposed, expanded and concatenated with the run's keys and values, the
 * keys transposed again: about 4 fp32 copies of one layer's keys and values, whatever the cache
 * keeps) and the last run's attention scores, masked scores and probabilities, times the arena's
 * slack, once for each of the engine's `sessions` (one per graph: each keeps its own arena).
 */
export function longPairBytes(shape: ModelShape, tokens: number, step: number, kvCache: KvCacheType, scoreBytes: number, sessions = 1): number {
  const fp32Layer = 2 * shape.kvHeads * shape.headDim * 4 * tokens;
  const lastRun = runPlan(0, tokens, step, shape.heads, scoreBytes).at(-1) ?? tokens;
  const scores = 3 * shape.heads * lastRun * tokens * 4;
  return cacheBytes(shape, kvCache, tokens) + sessions * ARENA_SLACK * (4 * fp32Layer + scores);
}
