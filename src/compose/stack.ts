import { splitDefaultKnobs } from "../config/knobs.js";
import type { Engine } from "../engines/engine.js";
import type { EngineChoice } from "../engines/open-engine.js";
import { openEngine } from "../engines/open-engine.js";
import type { LlamaEngineOptions } from "../engines/llama/options.js";
import { RerankError, ValidationError } from "../errors/errors.js";
import { DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import type { LogitCacheOptions } from "../scoring/logit-cache.js";
import type { SharedCacheOptions } from "../scoring/shared-cache.js";
import type { SharedCache } from "../scoring/shared-cache.js";
import type { QueueOptions } from "../distributed/queue-source.js";
import { LogitCache, engineIdentity } from "../scoring/logit-cache.js";
import { parseOrThrow } from "../config/validation.js";
import type { AdaptiveOptions } from "../monitor/adaptive.js";
import { AdaptiveController, adaptiveOptionsSchema } from "../monitor/adaptive.js";
import { AdjustmentLog } from "../monitor/adjustments.js";
import type { MonitorOptions } from "../monitor/monitor.js";
import { Monitor } from "../monitor/monitor.js";
import type { LogOddsSource } from "../pipeline/log-odds.js";
import { CachedSource, EngineSource } from "../pipeline/log-odds.js";
import type { PipelineSettings } from "../pipeline/pipeline.js";
import { Pipeline } from "../pipeline/pipeline.js";

/**
 * Options of createReranker: the engine's, the knob defaults every call starts from (one per row
 * of the knob table, src/config/knobs.ts, which holds each default; docs/tuning.md lists them),
 * custom presets, a warning hook, and the log-odds cache. `maxLength` is also the engine's
 * per-sequence context.
 */
export interface RerankerOptions extends LlamaEngineOptions, EngineChoice, PipelineSettings {
  /** LRU cache of log-odds (reused across temperature/top_p/threshold/top_n). Default: off. */
  cache?: LogitCacheOptions | undefined;
  /**
   * A log-odds cache in Redis shared by replicas, behind the LRU (which it turns on with its
   * default bounds when `cache` is not given). Redis down never fails a call. Default: off.
   */
  sharedCache?: SharedCacheOptions | undefined;
  /**
   * Score on workers instead of here: pairs go as BullMQ jobs to `qwen-rerank worker` processes
   * holding the same model file and engine settings (docs/scale-out.md). The model is still loaded
   * here, for its tokenizer and facts. Default: off.
   */
  queue?: QueueOptions | undefined;
  /** The monitor's rolling window, or false for no monitor. Default: the last 1000 requests within 300 s. */
  monitor?: MonitorOptions | false | undefined;
  /**
   * Opt-in adaptive control of temperature (and, in the server, the batch size) from the monitor's
   * figures: the guide's seed rule, a p95 latency objective, or a score-mean target. Needs the
   * monitor. Default: off.
   */
  adaptive?: AdaptiveOptions | undefined;
}

/** A loaded model and the parts every way of calling it is built from. */
export interface ScoringStack {
  engine: Engine;
  /** Log-odds straight from the engine. */
  engineSource: LogOddsSource;
  /** The LRU of log-odds, when configured. */
  cache: LogitCache | undefined;
  /** The Redis tier behind the LRU, when configured. */
  sharedCache: SharedCache | undefined;
  /** Watches every request of every pipeline of this stack (undefined when turned off). */
  monitor: Monitor | undefined;
  /** Turns the knobs from the monitor's figures (undefined unless `adaptive` asked for it). */
  adaptive: AdaptiveController | undefined;
  /** Every knob change: adaptive control's, and the engine's memory back-offs. */
  adjustments: AdjustmentLog;
  /** Gives the adaptive controller a batch size to turn (the server's scheduler). */
  attachBatchSize(knob: { get(): number; set(pairs: number): void }): void;
  /** The pipeline over `cached(engineSource)`: what the library uses. */
  pipeline: Pipeline;
  /** `source` behind the LRU when there is one (the server puts its scheduler there). */
  cached(source: LogOddsSource): LogOddsSource;
  dispose(): Promise<void>;
}

/** Loads the model and builds the stack. The caller owns it and must `dispose()` it. */
export async function openStack(options: RerankerOptions): Promise<ScoringStack> {
  if (!options || typeof options.model !== "string" || options.model.length === 0) {
    throw new ValidationError("a model is required: a GGUF path, an hf: URI, or a Hugging Face checkpoint folder or hub id", "model");
  }
  const { presets, onWarning, cache, sharedCache: sharedOptions, queue, monitor: monitorOptions, adaptive: adaptiveOptions, ...rest } = options;
  const { knobs, rest: engineOptions } = splitDefaultKnobs(rest);
  const settings: PipelineSettings = { ...knobs, presets, onWarning };
  // Validate the defaults before paying for a model load.
  Pipeline.checkSettings(settings);
  if (adaptiveOptions !== undefined) parseOrThrow(adaptiveOptionsSchema, adaptiveOptions, "adaptive");
  const warn = onWarning ?? ((m: string) => process.emitWarning(m, "QwenRerankWarning"));
  const adaptiveWanted = AdaptiveController.wanted(adaptiveOptions);
  if (adaptiveWanted) {
    if (monitorOptions === false) throw new ValidationError("adaptive control needs the monitor", "adaptive");
    const adaptsTemperature = adaptiveOptions.mode === "seed" || adaptiveOptions.targetScoreMean !== undefined;
    if (adaptsTemperature && knobs.threshold !== undefined) {
      warn(
        `threshold ${knobs.threshold} is fixed while adaptive control changes the temperature: the same document can pass one hour and not the next; prefer top_p or top_n`,
      );
    }
  }
  // Before paying for a model load: a queue needs a reachable Redis.
  // Redis clients (ioredis, BullMQ) are loaded only when a queue or a shared cache is asked for: every CLI start would pay for them.
  const distributed = queue ? await import("../distributed/queue-source.js") : undefined;
  const sharedModule = sharedOptions ? await import("../scoring/shared-cache.js") : undefined;
  if (queue) await (await import("../distributed/queue.js")).checkRedis(queue.url);
  // Checked before the model loads; connects in the background.
  const shared = sharedOptions && sharedModule ? sharedModule.SharedCache.open(sharedOptions, warn) : undefined;
  const monitor = monitorOptions === false ? undefined : new Monitor(monitorOptions);
  const adjustments = new AdjustmentLog();
  let engine: Engine;
  try {
    engine = await openEngine({
      ...engineOptions,
      onWarning: warn,
      contextSize: engineOptions.contextSize ?? knobs.maxLength ?? DEFAULT_MAX_LENGTH,
      onMemoryBackoff: (e) => {
        adjustments.recordBackoff(e);
        engineOptions.onMemoryBackoff?.(e);
      },
    });
  } catch (error) {
    await shared?.close();
    throw error;
  }
  try {
    // Read at each lookup: a memory back-off to a smaller batch changes the engine's numerics.
    const lru = cache || shared ? new LogitCache(() => engineIdentity(engine.info), cache) : undefined;
    const lookup = lru && shared && sharedModule ? new sharedModule.TieredCache(lru, shared) : lru;
    const remote = queue && distributed ? new distributed.QueueSource(engineIdentity(engine.info), engine.info.model, queue) : undefined;
    const engineSource = remote ?? new EngineSource(engine, monitor ? (pairs) => monitor.recordBatch(pairs) : undefined);
    const cached = (source: LogOddsSource) => (lookup ? new CachedSource(lookup, source) : source);
    const pipeline = Pipeline.create(engine, settings, cached(engineSource), monitor);
    // A library call is one engine call, whatever its size: no batch limit until a server attaches its scheduler's.
    let batch: { get(): number; set(pairs: number): void } | undefined;
    monitor?.describeCurrent(() => {
      const k = pipeline.resolve({});
      const c = engine.info.capacity;
      return {
        temperature: k.temperature,
        batch_size: batch?.get() ?? null,
        max_length: k.maxLength,
        top_p: k.topP ?? null,
        threshold: k.threshold ?? null,
        sequences: c.sequences,
        context_tokens: c.contextSize,
        engine_batch_tokens: c.batchSize,
      };
    });
    const adaptive =
      monitor && adaptiveWanted
        ? new AdaptiveController(adaptiveOptions, monitor, {
            batchSize: () => batch?.get(),
            setBatchSize: (pairs) => batch?.set(pairs),
            temperature: () => pipeline.resolve({}).temperature,
            bias: () => pipeline.resolve({}).bias,
            setTemperature: (t) => pipeline.setDefaultTemperature(t),
          }, adjustments)
        : undefined;
    return {
      engine,
      engineSource,
      cache: lru,
      sharedCache: shared,
      monitor,
      adaptive,
      adjustments,
      attachBatchSize: (knob) => {
        batch = knob;
      },
      pipeline,
      cached,
      dispose: async () => {
        adaptive?.dispose();
        await shared?.close();
        await remote?.close();
        await engine.dispose();
      },
    };
  } catch (error) {
    await shared?.close();
    await engine.dispose();
    throw error instanceof RerankError ? error : new RerankError("engine_failure", String(error));
  }
}
