import { splitDefaultKnobs } from "../config/knobs.js";
import type { Engine } from "../engines/engine.js";
import { LlamaEngine } from "../engines/llama/llama-engine.js";
import type { LlamaEngineOptions } from "../engines/llama/options.js";
import { RerankError, ValidationError } from "../errors/errors.js";
import { DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import type { LogitCacheOptions } from "../scoring/logit-cache.js";
import { LogitCache } from "../scoring/logit-cache.js";
import type { LogOddsSource } from "./log-odds.js";
import { CachedSource, EngineSource } from "./log-odds.js";
import type { PipelineSettings } from "./pipeline.js";
import { Pipeline } from "./pipeline.js";

/**
 * Options of createReranker: the engine's, the knob defaults every call starts from (one per row
 * of the knob table, src/config/knobs.ts, which holds each default; docs/tuning.md lists them),
 * custom presets, a warning hook, and the log-odds cache. `maxLength` is also the engine's
 * per-sequence context.
 */
export interface RerankerOptions extends LlamaEngineOptions, PipelineSettings {
  /** LRU cache of log-odds (reused across temperature/top_p/threshold/top_n). Default: off. */
  cache?: LogitCacheOptions | undefined;
}

/** A loaded model and the parts every way of calling it is built from. */
export interface ScoringStack {
  engine: Engine;
  /** Log-odds straight from the engine. */
  engineSource: LogOddsSource;
  /** The LRU of log-odds, when configured. */
  cache: LogitCache | undefined;
  /** The pipeline over `cached(engineSource)`: what the library uses. */
  pipeline: Pipeline;
  /** `source` behind the LRU when there is one (the server puts its scheduler there). */
  cached(source: LogOddsSource): LogOddsSource;
  dispose(): Promise<void>;
}

/** Loads the model and builds the stack. The caller owns it and must `dispose()` it. */
export async function openStack(options: RerankerOptions): Promise<ScoringStack> {
  if (!options || typeof options.model !== "string" || options.model.length === 0) {
    throw new ValidationError("a GGUF path or hf: URI is required", "model");
  }
  const { presets, onWarning, cache, ...rest } = options;
  const { knobs, rest: engineOptions } = splitDefaultKnobs(rest);
  const settings: PipelineSettings = { ...knobs, presets, onWarning };
  // Validate the defaults before paying for a model load.
  Pipeline.checkSettings(settings);
  const engine = await LlamaEngine.open({ ...engineOptions, contextSize: engineOptions.contextSize ?? knobs.maxLength ?? DEFAULT_MAX_LENGTH });
  try {
    const info = engine.info;
    const lru = cache ? new LogitCache(`${info.model}|${info.flavor}|${info.scoringPath}|${info.numerics}`, cache) : undefined;
    const engineSource = new EngineSource(engine);
    const cached = (source: LogOddsSource) => (lru ? new CachedSource(lru, source) : source);
    return {
      engine,
      engineSource,
      cache: lru,
      pipeline: Pipeline.create(engine, settings, cached(engineSource)),
      cached,
      dispose: () => engine.dispose(),
    };
  } catch (error) {
    await engine.dispose();
    throw error instanceof RerankError ? error : new RerankError("engine_failure", String(error));
  }
}
