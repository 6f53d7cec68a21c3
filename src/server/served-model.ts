import { heldKvBytes } from "../engines/llama/kv-bytes.js";
import { LlamaEngine } from "../engines/llama/llama-engine.js";
import type { Adjustment } from "../monitor/adjustments.js";
import type { Monitor } from "../monitor/monitor.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { RerankerOptions, ScoringStack } from "../compose/stack.js";
import { openStack } from "../compose/stack.js";
import type { SchedulerOptions, SchedulerState } from "../scheduler/scheduler.js";
import { Scheduler } from "../scheduler/scheduler.js";
import type { CacheStats } from "../scoring/logit-cache.js";
import type { SharedCacheStats } from "../scoring/shared-cache.js";
import type { ServerMetrics } from "./metrics.js";

/** One loaded model as the server serves it: its pipeline behind its own scheduler. */
export interface ServedModel {
  pipeline: Pipeline;
  /** The request monitor of this model (undefined with monitoring off). */
  monitor: Monitor | undefined;
  adjustments(): readonly Adjustment[];
  /** What waits in this model's scheduler. */
  queue(): SchedulerState;
  limits(): { maxBatchPairs: number; maxBatchTokens: number; maxQueuePairs: number };
  cacheStats(): CacheStats | undefined;
  /** The Redis tier's counters, when the model has one. */
  sharedCacheStats(): SharedCacheStats | undefined;
  /** Weights plus the KV cache the engine holds, in bytes (undefined when the engine cannot tell). */
  footprintBytes(): Promise<number | undefined>;
  /** Waits for queued work (bounded by `graceMs`), then frees the engine. */
  close(graceMs: number): Promise<void>;
}

/**
 * Loads a model for the server: the stack, a scheduler that merges concurrent requests into engine
 * calls (one per model: batches never mix models), the pipeline over the LRU and that scheduler,
 * and the metrics and log lines of its adjustments.
 */
export async function openServedModel(o: {
  name: string;
  reranker: RerankerOptions;
  scheduler?: SchedulerOptions | undefined;
  metrics: ServerMetrics;
  log?: ((line: Record<string, unknown>) => void) | undefined;
}): Promise<ServedModel> {
  const stack = await openStack(o.reranker);
  // Ready means at full speed: engines side by side have all opened (and /metrics names them all).
  await stack.engine.ready;
  const scheduler = new Scheduler(stack.engineSource, o.scheduler);
  scheduler.onBatch = (b) => o.metrics.observeBatch(b);
  const pipeline = stack.pipeline.withSource(stack.cached(scheduler));
  stack.attachBatchSize({ get: () => scheduler.limits.maxBatchPairs, set: (pairs) => scheduler.setMaxBatchPairs(pairs) });
  const announce = (a: Adjustment) => {
    o.metrics.adjustments.inc({ knob: a.knob });
    o.log?.({ event: "adjustment", model: o.name, ...a });
    if (a.knob === "sequences") o.metrics.setEngine(o.name, stack.engine.info, pipeline.resolve({}).maxLength);
  };
  // Back-offs made while the model loaded happened before anyone listened.
  for (const a of stack.adjustments.list) announce(a);
  stack.adjustments.onAdjust(announce);
  o.metrics.setEngine(o.name, stack.engine.info, pipeline.resolve({}).maxLength);
  return {
    pipeline,
    monitor: stack.monitor,
    adjustments: () => stack.adjustments.list,
    queue: () => scheduler.state,
    limits: () => scheduler.limits,
    cacheStats: () => stack.cache?.stats,
    sharedCacheStats: () => stack.sharedCache?.stats,
    footprintBytes: () => footprintOf(stack),
    close: async (graceMs) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([scheduler.drain(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      o.metrics.removeEngine(o.name);
      await stack.dispose();
    },
  };
}

/** What `doctor` counts for a model: its weights and the KV cache of the context it holds now. */
async function footprintOf(stack: ScoringStack): Promise<number | undefined> {
  const engine = stack.engine;
  if (!(engine instanceof LlamaEngine) || !engine.info.shape) return undefined;
  const d = await engine.diagnostics();
  return d.modelBytes + heldKvBytes(engine.info.shape, d.kvCacheType, engine.info.capacity);
}
