import type { CallKnobs, DefaultKnobs } from "../config/knobs.js";
import { defaultKnobsSchema, callOptionsSchema } from "../config/knobs.js";
import { parseOrThrow } from "../config/validation.js";
import type { EngineInfo, ScoreStats } from "../engines/engine.js";
import { RerankError, ValidationError } from "../errors/errors.js";
import type { ChunkSpan, Overflow } from "../prompt/chunking.js";
import { detectLanguage, isNonEnglishInstruction } from "../prompt/language.js";
import type { Preset } from "../prompt/presets.js";
import { PresetRegistry } from "../prompt/presets.js";
import type { Monitor } from "../monitor/monitor.js";
import { DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import type { PromptTokenizer, TruncationSide } from "../prompt/tokens.js";
import { PromptBuilder } from "../prompt/tokens.js";
import type { Omitted } from "../scoring/selection.js";
import { rankByLogit, selectCounting } from "../scoring/selection.js";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { LogOddsOptions, LogOddsSource } from "./log-odds.js";
import { Planner } from "./plan.js";

/** The knobs of one call after presets and defaults are applied. */
export interface ResolvedKnobs {
  instruction: string;
  temperature: number;
  bias: number;
  topP: number | undefined;
  threshold: number | undefined;
  maxLength: number;
  overflow: Overflow;
  language: string | undefined;
}

/** What every call of a reranker starts from: its knob defaults, presets and language map. */
export interface PipelineSettings extends DefaultKnobs {
  /** Extra presets (a built-in of the same name is replaced). Default: none. */
  presets?: Preset[] | undefined;
  /** Receives warnings (e.g. a non-English instruction, an onnx graph cache that could not be written), once per distinct message. Default: process.emitWarning. */
  onWarning?: ((message: string) => void) | undefined;
}

/** One result, whichever way the pipeline was called. */
export interface RerankResult {
  /** Position of the document (or pair) in the input. */
  index: number;
  /** sigmoid(logit / temperature + bias), in [0, 1]. */
  score: number;
  /** Raw log-odds z = logit(yes) - logit(no). */
  logit: number;
  /** True when the document was cut to fit max_length. */
  truncated: boolean;
  /** The document text, when asked for. */
  document?: string;
  /** The query's language, when the call asked for language routing. */
  language?: string;
  /** With overflow "chunk": the window that gave the score (document token offsets and text). */
  chunk?: ChunkSpan;
}

export interface PipelineRequest extends LogOddsOptions {
  /** One query for every document, or one query per document. */
  queries: readonly string[];
  documents: readonly string[];
  knobs?: CallKnobs | undefined;
  /** "ranked": best first, then top_p, threshold and top_n; "input": input order, nothing dropped. */
  order: "ranked" | "input";
  /** Cut each document to about this many tokens (Cohere v2 max_tokens_per_doc). Default: none. */
  maxTokensPerDoc?: number | undefined;
  /** Refuse (payload_too_large) instead of truncating a pair that does not fit (TEI truncate=false). */
  refuseTruncation?: boolean | undefined;
  /** Which end of an over-long document truncation removes. Default "end" (official). */
  truncationSide?: TruncationSide | undefined;
}

export interface PipelineResult {
  results: RerankResult[];
  /** How many documents top_p, threshold and top_n left out of `results` (all 0 for input order). */
  omitted: Omitted;
  /** The first query's language, when the call asked for language routing. */
  language: string | undefined;
  knobs: ResolvedKnobs;
  /** Pairs evaluated (windows of chunked documents count one each) and their prompt tokens. */
  pairs: number;
  tokens: number;
  /** Pairs answered by a cache. */
  cached: number;
  stats: ScoreStats;
  queueMs: number;
  inferenceMs: number;
  /** Milliseconds spent resolving knobs, routing and tokenizing (before any log-odds). */
  tokenizationMs: number;
}

/** State shared by a pipeline and the pipelines derived from it with `withSource`. */
interface Shared {
  /** The engine's description, read each time (a memory back-off changes its capacity). */
  engine: { readonly info: EngineInfo };
  planner: Planner;
  presets: PresetRegistry;
  defaults: Omit<DefaultKnobs, "preset" | "maxLength" | "bias"> & { maxLength: number; bias: number; preset: Preset | undefined };
  languageInstructions: Record<string, string>;
  onWarning: (message: string) => void;
  warned: Set<string>;
  monitor: Monitor | undefined;
}

/**
 * The one path of every scoring call, from the library, the server and eval alike:
 * knobs → instruction routing → plan (truncate or chunk) → log-odds (from a source: the engine,
 * a cache, the scheduler) → MaxP over windows → scores → selection.
 */
export class Pipeline {
  private constructor(
    private readonly shared: Shared,
    private readonly source: LogOddsSource,
  ) {}

  /** Validates the settings before a model is loaded, so that bad input costs no model load. */
  static checkSettings(settings: PipelineSettings): void {
    const { presets, onWarning: _onWarning, ...knobs } = settings;
    parseOrThrow(defaultKnobsSchema, knobs);
    if (knobs.preset !== undefined) new PresetRegistry(presets).get(knobs.preset);
  }

  /** `monitor`, when given, records every request of this pipeline and of those derived from it. */
  static create(engine: { info: EngineInfo; tokenizer: PromptTokenizer }, settings: PipelineSettings, source: LogOddsSource, monitor?: Monitor): Pipeline {
    const { presets, onWarning, ...knobs } = settings;
    const d = parseOrThrow(defaultKnobsSchema, knobs);
    const registry = new PresetRegistry(presets);
    const shared: Shared = {
      engine,
      planner: new Planner(new PromptBuilder(engine.tokenizer), engine.tokenizer),
      presets: registry,
      defaults: {
        ...d,
        preset: d.preset !== undefined ? registry.get(d.preset) : undefined,
        bias: d.bias ?? 0,
        maxLength: Math.min(d.maxLength ?? DEFAULT_MAX_LENGTH, engine.info.maxSequenceLength),
      },
      languageInstructions: { ...d.languageInstructions },
      onWarning: onWarning ?? ((message) => process.emitWarning(message, "QwenRerankWarning")),
      warned: new Set(),
      monitor,
    };
    return new Pipeline(shared, source);
  }

  /**
   * Replaces the reranker's default temperature (adaptive control): calls and their presets that
   * name a temperature still win. Shared with every pipeline derived by `withSource`.
   */
  setDefaultTemperature(t: number): void {
    if (!Number.isFinite(t) || t <= 0) throw new ValidationError("must be a positive number", "temperature");
    this.shared.defaults.temperature = t;
  }

  /** The same pipeline (knobs, presets, prompt) with its log-odds taken from another source. */
  withSource(source: LogOddsSource): Pipeline {
    return new Pipeline(this.shared, source);
  }

  get info(): EngineInfo {
    return this.shared.engine.info;
  }

  get presets(): PresetRegistry {
    return this.shared.presets;
  }

  get planner(): Planner {
    return this.shared.planner;
  }

  /** Runs one request through the chain; the monitor (when there is one) records it, failed or not. */
  async run(request: PipelineRequest): Promise<PipelineResult> {
    const monitor = this.shared.monitor;
    if (!monitor) return (await this.execute(request)).result;
    const started = performance.now();
    try {
      const { result, all } = await this.execute(request);
      monitor.record({
        endedAt: Date.now(),
        latencyMs: performance.now() - started,
        queueMs: result.queueMs,
        inferenceMs: result.inferenceMs,
        pairs: result.pairs,
        tokens: result.tokens,
        evaluatedTokens: result.stats.evaluatedTokens,
        cached: result.cached,
        scores: all.map((r) => r.score),
        logits: all.map((r) => r.logit),
        truncated: all.filter((r) => r.truncated).length,
        chunked: all.filter((r) => r.chunk).length,
        language: result.language,
      });
      return result;
    } catch (error) {
      const code = error instanceof RerankError ? error.code : "engine_failure";
      monitor.recordError(code, performance.now() - started);
      throw error;
    }
  }

  /** The chain itself; `all` holds every result before selection (what the monitor watches). */
  private async execute(request: PipelineRequest): Promise<{ result: PipelineResult; all: RerankResult[] }> {
    const { queries, documents } = request;
    const started = performance.now();
    if (queries.length !== 1 && queries.length !== documents.length) {
      throw new ValidationError(`got ${queries.length} queries for ${documents.length} documents: give one query, or one per document`, "queries");
    }
    const knobs = this.resolve(request.knobs ?? {});
    const queryOf = (i: number) => (queries.length === 1 ? queries[0] : queries[i]) ?? "";
    const routes = new Map<string, { instruction: string; language: string | undefined }>();
    const routeOf = (query: string) => {
      let r = routes.get(query);
      if (!r) routes.set(query, (r = this.route(query, request.knobs?.instruction, knobs)));
      return r;
    };
    const pairs = documents.map((document, i) => ({ instruction: routeOf(queryOf(i)).instruction, query: queryOf(i), document }));
    // max_tokens_per_doc bounds the document's tokens, so each query's own overhead is added.
    // Per query, not per pair: the overhead of a query is a tokenization.
    const maxLengths = new Map<string, number>();
    const maxLengthOf = (i: number) => {
      const query = queryOf(i);
      let m = maxLengths.get(query);
      if (m === undefined) maxLengths.set(query, (m = this.maxLengthFor(query, routeOf(query).instruction, knobs.maxLength, request.maxTokensPerDoc)));
      return m;
    };
    const planner = this.shared.planner;
    const plan = planner.plan(pairs, request.maxTokensPerDoc === undefined ? knobs.maxLength : maxLengthOf, knobs.overflow, request.truncationSide);
    if (request.refuseTruncation) {
      const k = plan.prepared.findIndex((p) => p.truncated);
      if (k >= 0) throw new RerankError("payload_too_large", `input ${plan.owner[k]} is longer than max_length ${maxLengthOf(plan.owner[k] ?? 0)} tokens and truncation is off`);
    }
    const tokenizationMs = performance.now() - started;
    const logOdds = await this.source.evaluate(plan.prepared, { signal: request.signal, onProgress: request.onProgress, timeoutMs: request.timeoutMs });
    const reduced = planner.reduce(plan, logOdds.logits);
    const results = reduced.map((r, index) => {
      const result: RerankResult = { index, score: scoreFromLogit(r.logit, knobs.temperature, knobs.bias), logit: r.logit, truncated: r.truncated };
      const language = routeOf(queryOf(index)).language;
      if (language !== undefined) result.language = language;
      if (r.chunk) result.chunk = r.chunk;
      return result;
    });
    const selection = request.order === "ranked" ? selectCounting(rankByLogit(results), { topP: knobs.topP, threshold: knobs.threshold, topN: request.knobs?.topN, temperature: knobs.temperature }) : { kept: [...results], omitted: { topP: 0, threshold: 0, topN: 0 } };
    const result: PipelineResult = {
      results: selection.kept,
      omitted: selection.omitted,
      language: routeOf(queryOf(0)).language,
      knobs,
      pairs: plan.prepared.length,
      tokens: plan.prepared.reduce((n, p) => n + p.tokens.length, 0),
      cached: logOdds.cached,
      stats: logOdds.stats,
      queueMs: logOdds.queueMs,
      inferenceMs: logOdds.inferenceMs,
      tokenizationMs,
    };
    return { result, all: results };
  }

  /**
   * The knobs of a call: most specific first, the call's knobs, the call's preset, the reranker's
   * own knobs, the reranker's preset, the official defaults. (A tuned or calibrated profile loaded
   * together with --preset keeps its temperature; a request that names a preset gets that preset's.)
   */
  resolve(callKnobs: CallKnobs): ResolvedKnobs {
    const o = parseOrThrow(callOptionsSchema, callKnobs);
    const d = this.shared.defaults;
    const callPreset = o.preset !== undefined ? this.shared.presets.get(o.preset) : undefined;
    const maxLength = o.maxLength ?? d.maxLength;
    const { maxSequenceLength } = this.shared.engine.info;
    if (maxLength > maxSequenceLength) {
      throw new ValidationError(`${maxLength} is more than the ${maxSequenceLength} tokens this model was loaded for (that context is fixed when the model loads: load it with a larger max length, e.g. \`qwen-rerank serve --max-length ${maxLength}\`)`, "maxLength");
    }
    const min = this.shared.planner.minMaxLength;
    if (maxLength < min) throw new ValidationError(`must be at least ${min} tokens: the prompt's template alone takes that many`, "maxLength");
    return {
      instruction: o.instruction ?? callPreset?.instruction ?? d.instruction ?? d.preset?.instruction ?? DEFAULT_INSTRUCTION,
      temperature: o.temperature ?? callPreset?.temperature ?? d.temperature ?? d.preset?.temperature ?? 1,
      bias: d.bias,
      topP: o.topP ?? callPreset?.topP ?? d.topP ?? d.preset?.topP,
      threshold: o.threshold ?? d.threshold,
      maxLength,
      overflow: o.overflow ?? d.overflow ?? "truncate",
      language: o.language ?? d.language,
    };
  }

  /**
   * The instruction for one query: an explicit instruction of the call wins; then, with language
   * routing, the instruction mapped to the query's language; then the resolved one. Warns (once
   * per instruction) when the instruction is not English.
   */
  private route(query: string, callInstruction: string | undefined, knobs: ResolvedKnobs): { instruction: string; language: string | undefined } {
    let instruction = knobs.instruction;
    let language: string | undefined;
    if (knobs.language !== undefined) {
      const map = this.shared.languageInstructions;
      // English is always a candidate: unmapped queries must not be forced into a mapped language.
      language = knobs.language === "auto" ? detectLanguage(query, [...new Set(["en", ...Object.keys(map)])]) : knobs.language;
      const mapped = map[language];
      if (callInstruction === undefined && mapped !== undefined) instruction = mapped;
    }
    const warned = this.shared.warned;
    if (!warned.has(instruction)) {
      // Checked once per distinct instruction; the set is bounded because clients choose them.
      if (warned.size >= 1000) warned.clear();
      warned.add(instruction);
      if (isNonEnglishInstruction(instruction)) {
        this.shared.onWarning(
          `the instruction "${instruction.slice(0, 60)}" is not in English; Qwen3-Reranker was trained with English instructions, which usually score better even for other languages`,
        );
      }
    }
    return { instruction, language };
  }

  private maxLengthFor(query: string, instruction: string, maxLength: number, maxTokensPerDoc: number | undefined): number {
    if (maxTokensPerDoc === undefined) return maxLength;
    // BODY without the document, plus the allowed document tokens (official truncation does the cut).
    return Math.min(maxLength, this.shared.planner.overhead(instruction, query) + maxTokensPerDoc);
  }
}
