import type { CallOptions } from "./config/options.js";
import { callOptionsSchema, documentsSchema, pairsSchema, parseOrThrow, querySchema } from "./config/options.js";
import type { Engine, EngineInfo, ScoreStats } from "./engines/engine.js";
import { LlamaEngine } from "./engines/llama/llama-engine.js";
import type { LlamaEngineOptions } from "./engines/llama/options.js";
import { RerankError, ValidationError } from "./errors/errors.js";
import type { ChunkSpan, Overflow } from "./prompt/chunking.js";
import { CHUNK_OVERLAP, chunkWindows } from "./prompt/chunking.js";
import { groupByHead } from "./prompt/groups.js";
import { detectLanguage, isNonEnglishInstruction } from "./prompt/language.js";
import type { Preset } from "./prompt/presets.js";
import { PresetRegistry } from "./prompt/presets.js";
import { DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH, formatBody } from "./prompt/template.js";
import type { PairText } from "./prompt/tokens.js";
import { PromptBuilder } from "./prompt/tokens.js";
import type { CacheStats, LogitCacheOptions, LogitLookup } from "./scoring/logit-cache.js";
import { LogitCache } from "./scoring/logit-cache.js";
import { rankByLogit, select } from "./scoring/selection.js";
import { scoreFromLogit } from "./scoring/temperature.js";

/** Options of createReranker: the engine's plus the defaults every call starts from. */
export interface RerankerOptions extends LlamaEngineOptions {
  /** Default max_length of every call (and the engine's per-sequence context). Default 8192. */
  maxLength?: number | undefined;
  /** Default instruction. Default: the official web-search instruction. */
  instruction?: string | undefined;
  /** Default temperature. Default 1 (official scores). */
  temperature?: number | undefined;
  /** Added to z / T before the sigmoid (a calibrated offset, see `qwen-rerank calibrate`). Default 0. */
  bias?: number | undefined;
  /** Default top_p of every call (a call's own top_p wins). Default: off. */
  topP?: number | undefined;
  /** Default threshold of every call (a call's own threshold wins). Default: none. */
  threshold?: number | undefined;
  /** Preset every call starts from (its instruction and knobs). Default: none. */
  preset?: string | undefined;
  /** Extra presets (a built-in of the same name is replaced). Default: none. */
  presets?: Preset[] | undefined;
  /**
   * Instruction per query language (ISO 639-1 code -> instruction), used by calls with
   * `language: "auto"` or a code. English instructions work best even for other languages.
   * Default: none.
   */
  languageInstructions?: Record<string, string> | undefined;
  /** Receives warnings (e.g. a non-English instruction), once per distinct message. Default: process.emitWarning. */
  onWarning?: ((message: string) => void) | undefined;
  /** LRU cache of log-odds (reused across temperature/top_p/threshold/top_n). Default: off. */
  cache?: LogitCacheOptions | undefined;
}

/** The knobs of one call after presets and defaults are applied. */
export interface ResolvedKnobs {
  instruction: string;
  temperature: number;
  bias: number;
  topP: number | undefined;
  threshold: number | undefined;
  maxLength: number;
}

/** Per-call options: the knobs plus cancellation and progress. */
export interface RerankCallOptions extends CallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

export interface RerankResult {
  /** Position of the document in the input. */
  index: number;
  /** sigmoid(logit / temperature + bias), in [0, 1]. */
  score: number;
  /** Raw log-odds z = logit(yes) - logit(no). */
  logit: number;
  /** True when the document was cut to fit max_length. */
  truncated: boolean;
  document?: string;
  /** The query's language, when the call asked for language routing. */
  language?: string;
  /** With overflow "chunk": the window that gave the score (document token offsets and text). */
  chunk?: ChunkSpan;
}

/** One pair's tokens, ready for any batch; pairs with the same head (instruction and query) share its evaluation. */
export interface PreparedPair {
  tokens: number[];
  truncated: boolean;
  /** Length of the reusable head (PairTokens.headLength). */
  headLength: number;
}

export interface ScoredPair {
  score: number;
  logit: number;
  truncated: boolean;
  /** The query's language, when the call asked for language routing. */
  language?: string;
}

/** The raw outcome of scoring pairs, for callers that report tokens and timing. */
export interface Evaluation {
  logits: Float64Array;
  truncated: boolean[];
  stats: ScoreStats;
  /** Per pair, the best window when the document was chunked (overflow "chunk"). */
  chunks?: Array<ChunkSpan | undefined>;
  /** Pairs answered by a cache instead of the engine. */
  cached?: number;
}

/** Pairs turned into engine work: one prepared pair per pair, or one per window of a chunked document. */
export interface PairPlan {
  prepared: PreparedPair[];
  /** For each prepared pair, the index of the pair it belongs to. */
  owner: number[];
  /** For each prepared pair, its window (chunked documents only). */
  spans: Array<ChunkSpan | undefined>;
  pairs: number;
}

export class Reranker {
  private readonly prompt: PromptBuilder;
  /** The reranker's own knobs: explicit ones (undefined when not given), its preset, bias and max_length. */
  private readonly defaults: Pick<RerankerOptions, "instruction" | "temperature" | "topP" | "threshold"> & { bias: number; maxLength: number; preset: Preset | undefined };
  /** Built-in and custom presets. */
  readonly presets: PresetRegistry;
  private readonly cache: LogitCache | undefined;
  private readonly languageInstructions: Record<string, string>;
  private readonly onWarning: (message: string) => void;
  private readonly checked = new Set<string>();

  constructor(
    private readonly engine: Engine,
    defaults: Pick<
      RerankerOptions,
      "instruction" | "temperature" | "bias" | "topP" | "threshold" | "maxLength" | "preset" | "presets" | "cache" | "languageInstructions" | "onWarning"
    > = {},
  ) {
    this.languageInstructions = { ...defaults.languageInstructions };
    this.onWarning = defaults.onWarning ?? ((message) => process.emitWarning(message, "QwenRerankWarning"));
    this.prompt = new PromptBuilder(engine.tokenizer);
    const i = engine.info;
    this.cache = defaults.cache ? new LogitCache(`${i.model}|${i.flavor}|${i.scoringPath}|${i.numerics}`, defaults.cache) : undefined;
    this.presets = new PresetRegistry(defaults.presets);
    const d = parseOrThrow(callOptionsSchema, {
      instruction: defaults.instruction,
      temperature: defaults.temperature,
      topP: defaults.topP,
      threshold: defaults.threshold,
      maxLength: defaults.maxLength,
    });
    const bias = defaults.bias ?? 0;
    if (!Number.isFinite(bias)) throw new ValidationError("must be a finite number", "bias");
    this.defaults = {
      preset: defaults.preset !== undefined ? this.presets.get(defaults.preset) : undefined,
      instruction: d.instruction,
      temperature: d.temperature,
      bias,
      topP: d.topP,
      threshold: d.threshold,
      maxLength: Math.min(d.maxLength ?? DEFAULT_MAX_LENGTH, engine.info.maxSequenceLength),
    };
  }

  /** The instruction of pairs that name none: the reranker's, its preset's, or the official one. */
  private get defaultInstruction(): string {
    return this.defaults.instruction ?? this.defaults.preset?.instruction ?? DEFAULT_INSTRUCTION;
  }

  /** Tokens of PREFIX plus SUFFIX: what every pair costs besides its BODY. */
  get templateTokens(): number {
    return this.prompt.prefix.length + this.prompt.suffix.length;
  }

  /** Tokens of a text in the model's vocabulary (plain text, no special tokens). */
  countTokens(text: string): number {
    return this.engine.tokenizer.tokenize(text, false).length;
  }

  get info(): EngineInfo {
    return this.engine.info;
  }

  /** Scores every document against the query and returns them best first (top_p, threshold, top_n applied). */
  async rerank(query: string, documents: readonly string[], options: RerankCallOptions = {}): Promise<RerankResult[]> {
    parseOrThrow(querySchema, query, "query");
    parseOrThrow(documentsSchema, documents, "documents");
    const o = this.resolve(options);
    const routed = this.route(query, options, o);
    const evaluation = await this.evaluate(
      documents.map((document) => ({ instruction: routed.instruction, query, document })),
      options,
    );
    const results = Array.from(evaluation.logits, (logit, index) => {
      const r: RerankResult = { index, score: scoreFromLogit(logit, o.temperature, o.bias), logit, truncated: evaluation.truncated[index] ?? false };
      if (options.returnDocuments) r.document = documents[index];
      if (routed.language !== undefined) r.language = routed.language;
      const chunk = evaluation.chunks?.[index];
      if (chunk) r.chunk = chunk;
      return r;
    });
    return select(rankByLogit(results), { topP: o.topP, threshold: o.threshold, topN: options.topN, temperature: o.temperature });
  }

  /** Scores (query, document) pairs in input order. */
  async score(pairs: ReadonlyArray<{ query: string; document: string }>, options: RerankCallOptions = {}): Promise<ScoredPair[]> {
    parseOrThrow(pairsSchema, pairs, "pairs");
    const o = this.resolve(options);
    const routes = new Map<string, { instruction: string; language?: string | undefined }>();
    const routeOf = (query: string) => {
      let r = routes.get(query);
      if (!r) routes.set(query, (r = this.route(query, options, o)));
      return r;
    };
    const evaluation = await this.evaluate(
      pairs.map((p) => ({ instruction: routeOf(p.query).instruction, query: p.query, document: p.document })),
      options,
    );
    return Array.from(evaluation.logits, (logit, i) => {
      const r: ScoredPair = { logit, score: scoreFromLogit(logit, o.temperature, o.bias), truncated: evaluation.truncated[i] ?? false };
      const language = routeOf(pairs[i]?.query ?? "").language;
      if (language !== undefined) r.language = language;
      return r;
    });
  }

  /**
   * Builds the prompts, groups pairs that share instruction and query so the engine can reuse
   * their common token prefix, and returns raw log-odds in input order.
   */
  async evaluate(pairs: readonly PairText[], options: RerankCallOptions = {}): Promise<Evaluation> {
    const plan = this.plan(pairs, this.resolve(options).maxLength, options.overflow ?? "truncate");
    return this.reduce(plan, await this.evaluatePrepared(plan.prepared, options));
  }

  /**
   * Tokenizes pairs for the engine. With overflow "chunk", a document whose pair does not fit is
   * cut into overlapping windows of its own tokens (each window a pair of its own, with the same
   * instruction and query); `reduce` then keeps each document's best window (MaxP).
   */
  plan(pairs: readonly PairText[], maxLength: number, overflow: Overflow): PairPlan {
    const plan: PairPlan = { prepared: [], owner: [], spans: [], pairs: pairs.length };
    const single = this.prepare(pairs, maxLength);
    single.forEach((prepared, i) => {
      const pair = pairs[i];
      if (overflow === "truncate" || !prepared.truncated || !pair) {
        plan.prepared.push(prepared);
        plan.owner.push(i);
        plan.spans.push(undefined);
        return;
      }
      for (const w of this.windows(pair, maxLength)) {
        const [p] = this.prepare([{ ...pair, document: w.text }], maxLength);
        if (!p) continue;
        plan.prepared.push(p);
        plan.owner.push(i);
        plan.spans.push(w);
      }
    });
    return plan;
  }

  private windows(pair: PairText, maxLength: number): ChunkSpan[] {
    const tokenizer = this.engine.tokenizer;
    if (!tokenizer.detokenize) throw new RerankError("engine_unavailable", "this engine cannot detokenize, so documents cannot be chunked");
    const instruction = pair.instruction ?? this.defaultInstruction;
    const overhead = this.countTokens(formatBody(instruction.normalize("NFC"), pair.query.normalize("NFC"), "")) + this.templateTokens;
    // Two tokens of slack: BPE may merge across the boundary between the template and the window.
    const size = maxLength - overhead - 2;
    if (size < 8) throw new ValidationError(`max_length ${maxLength} leaves ${Math.max(0, size)} tokens per window after the instruction and query; raise it to chunk`, "maxLength");
    const tokens = tokenizer.tokenize(pair.document.normalize("NFC"), false);
    const spans = chunkWindows(tokens.length, size, Math.floor(size * CHUNK_OVERLAP));
    return spans.map(([start, end]) => ({ start, end, windows: spans.length, text: tokenizer.detokenize?.(tokens.slice(start, end)) ?? "" }));
  }

  /** MaxP: each pair's log-odds is the best of its windows; results in pair order. */
  reduce(plan: PairPlan, evaluation: Evaluation): Evaluation {
    const logits = new Float64Array(plan.pairs).fill(Number.NEGATIVE_INFINITY);
    const truncated = new Array<boolean>(plan.pairs).fill(false);
    const chunks = new Array<ChunkSpan | undefined>(plan.pairs).fill(undefined);
    plan.owner.forEach((i, k) => {
      const z = evaluation.logits[k] ?? Number.NaN;
      if (z > (logits[i] ?? Number.NEGATIVE_INFINITY) || Number.isNaN(z)) {
        logits[i] = z;
        chunks[i] = plan.spans[k];
      }
      if (!plan.spans[k]) truncated[i] = evaluation.truncated[k] ?? false;
    });
    return { logits, truncated, stats: evaluation.stats, chunks };
  }

  /** Tokenizes pairs (official template and truncation); the result can be scored in any batch. */
  prepare(pairs: readonly PairText[], maxLength: number): PreparedPair[] {
    return pairs.map((p) => {
      const instruction = p.instruction ?? this.defaultInstruction;
      const built = this.prompt.build({ ...p, instruction }, maxLength);
      return { tokens: built.tokens, truncated: built.truncated, headLength: built.headLength };
    });
  }

  /**
   * Scores prepared pairs (from one or many requests) in one engine call, results in input order.
   * With a cache (the reranker's, or `options.cache`), pairs scored before are answered from it
   * and only the rest reach the engine.
   */
  async evaluatePrepared(
    prepared: readonly PreparedPair[],
    options: Pick<RerankCallOptions, "signal" | "onProgress"> & { cache?: LogitLookup | undefined } = {},
  ): Promise<Evaluation> {
    const cache = options.cache ?? this.cache;
    if (!cache) return this.evaluateOnEngine(prepared, options);
    const keys = prepared.map((p) => cache.key(p.tokens));
    const logits = new Float64Array(prepared.length);
    const missing: number[] = [];
    keys.forEach((k, i) => {
      const z = cache.get(k);
      if (z === undefined) missing.push(i);
      else logits[i] = z;
    });
    let stats: ScoreStats = { evaluatedTokens: 0, pairTokens: 0 };
    if (missing.length > 0) {
      const fresh = await this.evaluateOnEngine(
        missing.map((i) => prepared[i] as PreparedPair),
        options,
      );
      missing.forEach((i, j) => {
        logits[i] = fresh.logits[j] ?? Number.NaN;
      });
      cache.setMany(missing.map((i, j) => [keys[i] ?? "", fresh.logits[j] ?? Number.NaN] as const));
      stats = fresh.stats;
    }
    return { logits, truncated: prepared.map((p) => p.truncated), stats, cached: prepared.length - missing.length };
  }

  /** Cache counters, or undefined when the cache is off. */
  get cacheStats(): CacheStats | undefined {
    return this.cache?.stats;
  }

  private async evaluateOnEngine(prepared: readonly PreparedPair[], options: Pick<RerankCallOptions, "signal" | "onProgress">): Promise<Evaluation> {
    const { groups, indices } = groupByHead(prepared);
    const total = prepared.length;
    const { logits: grouped, stats } = await this.engine.score(groups, {
      signal: options.signal,
      onProgress: options.onProgress ? (done) => options.onProgress?.(done, total) : undefined,
    });
    const logits = new Float64Array(total);
    let k = 0;
    for (const idx of indices) for (const i of idx) logits[i] = grouped[k++] ?? Number.NaN;
    return { logits, truncated: prepared.map((p) => p.truncated), stats };
  }

  /**
   * The instruction for one query: an explicit instruction wins; then, when the call asks for
   * language routing, the instruction mapped to the query's language; then the preset's or the
   * default. Warns (once per instruction) when the instruction is not English.
   */
  route(query: string, options: Pick<RerankCallOptions, "instruction" | "language">, resolved: ResolvedKnobs): { instruction: string; language?: string | undefined } {
    let instruction = resolved.instruction;
    let language: string | undefined;
    if (options.language !== undefined) {
      const map = this.languageInstructions;
      // English is always a candidate: unmapped queries must not be forced into a mapped language.
      language = options.language === "auto" ? detectLanguage(query, [...new Set(["en", ...Object.keys(map)])]) : options.language;
      const mapped = map[language];
      if (options.instruction === undefined && mapped !== undefined) instruction = mapped;
    }
    if (!this.checked.has(instruction)) {
      // Checked once per distinct instruction; the set is bounded because clients choose them.
      if (this.checked.size >= 1000) this.checked.clear();
      this.checked.add(instruction);
      if (isNonEnglishInstruction(instruction)) {
        this.onWarning(
          `the instruction "${instruction.slice(0, 60)}" is not in English; Qwen3-Reranker was trained with English instructions, which usually score better even for other languages`,
        );
      }
    }
    return { instruction, language };
  }

  /** Resolves per-call knobs against the preset and the reranker's defaults (validated). */
  resolveOptions(options: RerankCallOptions): ResolvedKnobs {
    return this.resolve(options);
  }

  private resolve(options: RerankCallOptions): ResolvedKnobs {
    const { signal: _signal, onProgress: _onProgress, ...knobs } = options;
    const o = parseOrThrow(callOptionsSchema, knobs);
    // Most specific first: the call's knobs, the call's preset, the reranker's own knobs, the
    // reranker's preset, the official defaults. (A tuned or calibrated profile loaded together
    // with --preset keeps its temperature; a request that names a preset gets that preset's.)
    const d = this.defaults;
    const callPreset = o.preset !== undefined ? this.presets.get(o.preset) : undefined;
    const maxLength = o.maxLength ?? this.defaults.maxLength;
    if (maxLength > this.engine.info.maxSequenceLength) {
      throw new ValidationError(
        `${maxLength} exceeds the engine's context of ${this.engine.info.maxSequenceLength} tokens (raise maxLength when creating the reranker)`,
        "maxLength",
      );
    }
    if (maxLength < this.prompt.minMaxLength) throw new ValidationError(`must be at least ${this.prompt.minMaxLength} (the template alone)`, "maxLength");
    return {
      instruction: o.instruction ?? callPreset?.instruction ?? d.instruction ?? d.preset?.instruction ?? DEFAULT_INSTRUCTION,
      temperature: o.temperature ?? callPreset?.temperature ?? d.temperature ?? d.preset?.temperature ?? 1,
      bias: d.bias,
      topP: o.topP ?? callPreset?.topP ?? d.topP ?? d.preset?.topP,
      threshold: o.threshold ?? d.threshold,
      maxLength,
    };
  }

  dispose(): Promise<void> {
    return this.engine.dispose();
  }
}

/** Opens the model and returns a ready reranker. The caller owns it and must `dispose()` it. */
export async function createReranker(options: RerankerOptions): Promise<Reranker> {
  if (!options || typeof options.model !== "string" || options.model.length === 0) {
    throw new ValidationError("a GGUF path or hf: URI is required", "model");
  }
  const { maxLength, instruction, temperature, bias, topP, threshold, preset, presets, cache, languageInstructions, onWarning, ...engineOptions } = options;
  // Validate defaults before paying for a model load.
  parseOrThrow(callOptionsSchema, { instruction, temperature, topP, threshold, maxLength });
  if (bias !== undefined && !Number.isFinite(bias)) throw new ValidationError("must be a finite number", "bias");
  if (preset !== undefined) new PresetRegistry(presets).get(preset);
  const engine = await LlamaEngine.open({ ...engineOptions, contextSize: engineOptions.contextSize ?? maxLength ?? DEFAULT_MAX_LENGTH });
  try {
    return new Reranker(engine, { instruction, temperature, bias, topP, threshold, maxLength, preset, presets, cache, languageInstructions, onWarning });
  } catch (error) {
    await engine.dispose();
    throw error instanceof RerankError ? error : new RerankError("engine_failure", String(error));
  }
}
