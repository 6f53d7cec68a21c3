import type { PrefixGroup } from "../prompt/groups.js";
import type { PromptTokenizer } from "../prompt/tokens.js";
import type { HeadCacheStats } from "./head-cache.js";
import type { ModelFlavor, ModelShape } from "../model/facts.js";
import type { OnnxPrecision } from "./onnx/precision.js";

/** What an engine is and can do; nothing else about the engine leaks above the interface. */
export interface EngineInfo {
  /** e.g. "llama.cpp via node-llama-cpp 3.21.1 (cpu)". */
  backend: string;
  /** Display name of the model (file name or URI). */
  model: string;
  /**
   * The model file's content fingerprint (src/gguf/fingerprint.ts): the same file on any machine,
   * under any name, has the same one. Caches shared between machines key on it.
   */
  fingerprint: string;
  flavor: ModelFlavor;
  /**
   * Where z comes from: the yes/no rows of the LM head at the last position, or the rank head
   * (`cls.output`: llama.cpp's rank pooling; the onnx engine reads its yes/no rows the same way).
   */
  scoringPath: "lm-head" | "rank-pooling";
  /** Longest sequence the model was trained for (GGUF context_length). */
  trainContext: number;
  /** Longest sequence this engine instance accepts (its per-sequence context). */
  maxSequenceLength: number;
  /** Pairs evaluated in parallel. */
  sequences: number;
  /**
   * What the engine's memory holds now: tokens per sequence, sequences, tokens per batch. Below
   * what was asked for after a memory back-off; a longer pair makes the engine try to grow it.
   */
  capacity: ContextShape;
  /**
   * The engine settings a pair's log-odds depend on besides the model file and the prompt tokens
   * (kernel rounding differs between them), e.g. "cpu kv=f16 fa=on batch=512". Two engines with the
   * same model and numerics give the same bits for the same tokens; caches key on it.
   */
  numerics: string;
  shape: ModelShape | undefined;
  /**
   * The onnx engine: where this start's graphs came from: "cache" (built by an earlier start and
   * loaded from disk), "built" (built now and kept on disk) or "memory" (built now, kept in memory
   * only: the cache is off or could not be written). Absent for the llama.cpp engine.
   */
  graphs?: "cache" | "built" | "memory" | undefined;
  yesTokenId: number;
  noTokenId: number;
  /** The prompt heads kept across calls (`prefixCacheBytes`): now, and hits/misses since load. */
  prefixCache: HeadCacheStats;
  /** With `engine: "auto"`: what was chosen and why. */
  selection?: EngineSelection | undefined;
  /** The processes the engine scores in besides this one (onnxEngines above 1): how many, and their peak RSS summed. */
  memberProcesses?: { count: number; peakRssBytes: number } | undefined;
}

/** The memory-relevant settings of an engine's context. */
export interface ContextShape {
  /** Tokens per sequence. */
  contextSize: number;
  /** Parallel sequences (pairs evaluated at once). */
  sequences: number;
  /** Tokens per batch. */
  batchSize: number;
}

/** The engine changed its context to fit memory. */
export interface MemoryBackoff {
  /** When it happened: loading, a pair longer than the current context, or a decode that ran out of memory. */
  trigger: "load" | "long pair" | "decode";
  from: ContextShape;
  to: ContextShape;
  /** Tokens the longest pending pair needs (the context never goes below it). */
  neededTokens: number;
  /** What the runtime said when the larger configuration failed. */
  reason: string;
}

export interface ScoreRequestOptions {
  /** Stops work on pairs not yet started; the promise rejects with a `cancelled` error. */
  signal?: AbortSignal | undefined;
  /** Called after each pair with the number of pairs finished so far. */
  onProgress?: ((done: number) => void) | undefined;
}

/** Token accounting of one `score` call. */
export interface ScoreStats {
  /** Tokens the model actually evaluated (prefix reuse makes this smaller). */
  evaluatedTokens: number;
  /** Tokens of all pairs as if each were evaluated whole. */
  pairTokens: number;
}

/**
 * The narrow waist between qwen-rerank and a model runtime. In-process engines receive token
 * sequences built by prompt/, grouped by shared prefix; they return the raw log-odds
 * z = logit(yes) - logit(no) of every pair, flattened in group order. Everything else
 * (temperature, selection, calibration) happens above, engine-independently.
 */
export interface Engine {
  readonly info: EngineInfo;
  /** Set by openEngine when `engine: "auto"` chose this engine; part of `info`. */
  selection?: EngineSelection | undefined;
  readonly tokenizer: PromptTokenizer;
  /**
   * Settles when the engine scores at its full speed: engines side by side (onnx-engine-pool.ts)
   * score from their first engine on while the others open. Absent: at once. `bench` times after it.
   */
  readonly ready?: Promise<void> | undefined;
  score(groups: readonly PrefixGroup[], options?: ScoreRequestOptions): Promise<{ logits: Float64Array; stats: ScoreStats }>;
  dispose(): Promise<void>;
}

/** A concrete engine: what `engine: "auto"` resolves to. */
export interface ConcreteEngine {
  engine: "llama" | "onnx";
  onnxPrecision?: OnnxPrecision | undefined;
}

/** One candidate's calibration figures. */
export interface EngineTrialResult {
  /** "llama", "onnx int8", ... */
  name: string;
  pairsPerSecond: number;
  /** The agreement bars it misses against the reference (empty: meets them, or is the reference). */
  missed: string[];
  /** Why it could not run (did not fit, failed to load). */
  error?: string | undefined;
  /** Its agreement with the reference in words, when compared (the llama.cpp engine's is shown, not gated). */
  agreement?: string | undefined;
}

/** Which engine runs, and why; shown in /info, /stats, doctor and the log. */
export interface EngineSelection extends ConcreteEngine {
  /** In words, with the figures. */
  reason: string;
  /**
   * "asked": the caller named the engine (`engine: "llama" | "onnx"`, or an onnx precision);
   * "rule": `engine: "auto"` decided from this machine, the install, the model file and the settings
   * (selectByRule), measuring nothing; "measured": a calibration of this model file on this CPU with
   * these threads (`doctor --engines`), kept in engine-choice.json and used from then on.
   */
  source: "asked" | "rule" | "measured";
  /**
   * The onnx engine as this many engines of one thread each, side by side (`onnxEngines`), when the
   * layout rule chose it for onnx int8 (onnxLayout in src/engines/engine-selection.ts); absent: one engine.
   */
  onnxEngines?: number | undefined;
  /** The candidates measured (empty unless measured). */
  trials: EngineTrialResult[];
  /** What a calibration is kept under: model fingerprint, CPU kernel flags, threads ("" when none applies). */
  key: string;
  /** When it was decided or measured (ISO 8601). */
  measuredAt: string;
}
