import type { CallOptions } from "./config/knobs.js";
import { documentsSchema, pairsSchema, parseOrThrow, querySchema } from "./config/validation.js";
import type { EngineInfo } from "./engines/engine.js";
import type { Monitor } from "./monitor/monitor.js";
import type { PipelineRequest, RerankResult, ResolvedKnobs } from "./pipeline/pipeline.js";
import type { RerankerOptions, ScoringStack } from "./compose/stack.js";
import { openStack } from "./compose/stack.js";
import { RerankError } from "./errors/errors.js";
import type { PresetRegistry } from "./prompt/presets.js";
import type { CacheStats } from "./scoring/logit-cache.js";
import type { Omitted } from "./scoring/selection.js";
import { describeOmitted } from "./scoring/selection.js";

export type { RerankerOptions } from "./compose/stack.js";
export type { RerankResult, ResolvedKnobs } from "./pipeline/pipeline.js";
export type { Omitted } from "./scoring/selection.js";
/** The result of `score`: the same shape as a rerank result, in input order. */
export type ScoredPair = RerankResult;

/** A rerank answer and what its selection knobs left out. */
export interface RerankReport {
  /** Best first, as `rerank` returns them. */
  results: RerankResult[];
  /** Documents left out by top_p, threshold and top_n (each 0 when it removed none). */
  omitted: Omitted;
  /** One line for people, when anything was left out ("1 of 3 documents returned: top_p 0.8 left out 2"). */
  omittedReason?: string;
  /** The knobs the call ran with (after presets and defaults). */
  knobs: ResolvedKnobs;
}

/** Per-call options: the knobs plus cancellation and progress. */
export interface RerankCallOptions extends CallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** The library object: one loaded model; every call goes through the one scoring pipeline. */
export class Reranker {
  private disposed = false;
  constructor(private readonly stack: ScoringStack) {}

  /** A call after `dispose()` is the caller's mistake, said in its words (not the engine's "Object is disposed"). */
  private ensureOpen(): void {
    if (this.disposed) throw new RerankError("engine_unavailable", "this reranker was disposed; create another with createReranker()");
  }

  /** Scores every document against the query and returns them best first (top_p, threshold, top_n applied). */
  async rerank(query: string, documents: readonly string[], options: RerankCallOptions = {}): Promise<RerankResult[]> {
    return (await this.rerankReport(query, documents, options)).results;
  }

  /**
   * `rerank`, with what the answer left out: how many documents top_p, threshold and top_n
   * removed (a preset or the reranker's defaults may set them), and the knobs the call ran with.
   */
  async rerankReport(query: string, documents: readonly string[], options: RerankCallOptions = {}): Promise<RerankReport> {
    this.ensureOpen();
    parseOrThrow(querySchema, query, "query");
    parseOrThrow(documentsSchema, documents, "documents");
    const { results, omitted, knobs } = await this.stack.pipeline.run(this.request([query], documents, "ranked", options));
    if (options.returnDocuments) for (const r of results) r.document = documents[r.index];
    const described = describeOmitted(omitted, { topP: knobs.topP, threshold: knobs.threshold, topN: options.topN }, documents.length);
    return { results, omitted, knobs, ...(described ? { omittedReason: described } : {}) };
  }

  /** Scores (query, document) pairs; results in input order, nothing dropped. */
  async score(pairs: ReadonlyArray<{ query: string; document: string }>, options: RerankCallOptions = {}): Promise<ScoredPair[]> {
    this.ensureOpen();
    parseOrThrow(pairsSchema, pairs, "pairs");
    const request = this.request(
      pairs.map((p) => p.query),
      pairs.map((p) => p.document),
      "input",
      options,
    );
    return (await this.stack.pipeline.run(request)).results;
  }

  /** Tokens of a text in the model's vocabulary (plain text, no special tokens). */
  countTokens(text: string): number {
    this.ensureOpen();
    return this.stack.pipeline.planner.countTokens(text);
  }

  get info(): EngineInfo {
    return this.stack.engine.info;
  }

  /** Built-in and custom presets. */
  get presets(): PresetRegistry {
    return this.stack.pipeline.presets;
  }

  /** The knobs a call with these options runs with (after presets and the reranker's defaults). */
  knobsFor(options: CallOptions = {}): ResolvedKnobs {
    const { returnDocuments: _returnDocuments, ...knobs } = options;
    return this.stack.pipeline.resolve(knobs);
  }

  /** Latency, throughput and score figures of this reranker's calls (`monitor.snapshot()`); undefined with `monitor: false`. */
  get monitor(): Monitor | undefined {
    return this.stack.monitor;
  }

  /** Cache counters, or undefined when the cache is off. */
  get cacheStats(): CacheStats | undefined {
    return this.stack.cache?.stats;
  }

  /** Frees the model; later calls fail with a clear error. Calling it again does nothing. */
  dispose(): Promise<void> {
    if (this.disposed) return Promise.resolve();
    this.disposed = true;
    return this.stack.dispose();
  }

  private request(queries: readonly string[], documents: readonly string[], order: PipelineRequest["order"], options: RerankCallOptions): PipelineRequest {
    const { signal, onProgress, returnDocuments: _returnDocuments, ...knobs } = options;
    return { queries, documents, knobs, order, signal, onProgress };
  }
}

/** Opens the model and returns a ready reranker. The caller owns it and must `dispose()` it. */
export async function createReranker(options: RerankerOptions): Promise<Reranker> {
  return new Reranker(await openStack(options));
}
