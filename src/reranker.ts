import type { CallOptions } from "./config/knobs.js";
import { documentsSchema, pairsSchema, parseOrThrow, querySchema } from "./config/validation.js";
import type { EngineInfo } from "./engines/engine.js";
import type { Monitor } from "./monitor/monitor.js";
import type { PipelineRequest, RerankResult, ResolvedKnobs } from "./pipeline/pipeline.js";
import type { RerankerOptions, ScoringStack } from "./pipeline/stack.js";
import { openStack } from "./pipeline/stack.js";
import type { PresetRegistry } from "./prompt/presets.js";
import type { CacheStats } from "./scoring/logit-cache.js";

export type { RerankerOptions } from "./pipeline/stack.js";
export type { RerankResult, ResolvedKnobs } from "./pipeline/pipeline.js";
/** The result of `score`: the same shape as a rerank result, in input order. */
export type ScoredPair = RerankResult;

/** Per-call options: the knobs plus cancellation and progress. */
export interface RerankCallOptions extends CallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** The library object: one loaded model; every call goes through the one scoring pipeline. */
export class Reranker {
  constructor(private readonly stack: ScoringStack) {}

  /** Scores every document against the query and returns them best first (top_p, threshold, top_n applied). */
  async rerank(query: string, documents: readonly string[], options: RerankCallOptions = {}): Promise<RerankResult[]> {
    parseOrThrow(querySchema, query, "query");
    parseOrThrow(documentsSchema, documents, "documents");
    const { results } = await this.stack.pipeline.run(this.request([query], documents, "ranked", options));
    if (options.returnDocuments) for (const r of results) r.document = documents[r.index];
    return results;
  }

  /** Scores (query, document) pairs; results in input order, nothing dropped. */
  async score(pairs: ReadonlyArray<{ query: string; document: string }>, options: RerankCallOptions = {}): Promise<ScoredPair[]> {
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

  dispose(): Promise<void> {
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
