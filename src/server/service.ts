import { RerankError, ValidationError } from "../errors/errors.js";
import type { ChunkSpan, Overflow } from "../prompt/chunking.js";
import { formatBody } from "../prompt/template.js";
import type { Reranker } from "../reranker.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import { rankByLogit, select } from "../scoring/selection.js";
import { scoreFromLogit } from "../scoring/temperature.js";

/** The knobs every dialect accepts (our extension fields included), already validated. */
export interface Knobs {
  instruction?: string | undefined;
  preset?: string | undefined;
  /** "auto" or an ISO 639-1 code: route the instruction by the query's language. */
  language?: string | undefined;
  temperature?: number | undefined;
  topN?: number | undefined;
  topP?: number | undefined;
  threshold?: number | undefined;
  maxLength?: number | undefined;
  /** Cut each document to about this many tokens (Cohere v2 max_tokens_per_doc). */
  maxTokensPerDoc?: number | undefined;
  /** "chunk": score overlapping windows of over-long documents and keep the best (MaxP). Default "truncate". */
  overflow?: Overflow | undefined;
  /** Refuse (413) instead of truncating when a pair does not fit (TEI truncate=false). */
  refuseTruncation?: boolean | undefined;
}

export interface ServiceResult {
  index: number;
  score: number;
  logit: number;
  truncated: boolean;
  chunk?: ChunkSpan | undefined;
}

export interface ServiceOutcome<R> {
  results: R[];
  /** The (first) query's language when the request asked for language routing. */
  language?: string | undefined;
  pairs: number;
  tokens: number;
  queueMs: number;
  inferenceMs: number;
}

/**
 * The dialect-independent core of the server: prompt building through the reranker, scoring
 * through the scheduler, then temperature and selection. Adapters only reshape JSON.
 */
export class RerankService {
  constructor(
    readonly reranker: Reranker,
    readonly scheduler: Scheduler,
    private readonly timeoutMs: number | undefined,
  ) {}

  private maxLengthFor(query: string, knobs: Knobs, instruction: string, maxLength: number): number {
    if (knobs.maxTokensPerDoc === undefined) return maxLength;
    // BODY without the document, plus the allowed document tokens (official truncation does the cut).
    const overhead = this.reranker.countTokens(formatBody(instruction, query, "")) + this.reranker.templateTokens;
    return Math.min(maxLength, overhead + knobs.maxTokensPerDoc);
  }

  private async run(queries: readonly string[], documents: readonly string[], knobs: Knobs, signal: AbortSignal | undefined) {
    const o = this.reranker.resolveOptions({
      instruction: knobs.instruction,
      preset: knobs.preset,
      language: knobs.language,
      temperature: knobs.temperature,
      topP: knobs.topP,
      threshold: knobs.threshold,
      maxLength: knobs.maxLength,
    });
    const routes = queries.map((q) => this.reranker.route(q, { instruction: knobs.instruction, language: knobs.language }, o));
    const routeOf = (i: number) => routes[queries.length === 1 ? 0 : i] ?? { instruction: o.instruction };
    const maxLength = this.maxLengthFor(queries[0] ?? "", knobs, routeOf(0).instruction, o.maxLength);
    const plan = this.reranker.plan(
      documents.map((document, i) => ({ instruction: routeOf(i).instruction, query: queries[queries.length === 1 ? 0 : i] ?? "", document })),
      maxLength,
      knobs.overflow ?? "truncate",
    );
    if (knobs.refuseTruncation) {
      const k = plan.prepared.findIndex((p) => p.truncated);
      if (k >= 0) throw new RerankError("payload_too_large", `input ${plan.owner[k]} is longer than max_length ${maxLength} tokens and truncation is off`);
    }
    const job = await this.scheduler.submit(plan.prepared, { signal, timeoutMs: this.timeoutMs });
    const evaluation = this.reranker.reduce(plan, { logits: job.logits, truncated: job.truncated, stats: job.stats });
    const tokens = plan.prepared.reduce((n, p) => n + p.tokens.length, 0);
    const results: ServiceResult[] = Array.from(evaluation.logits, (logit, index) => ({
      index,
      logit,
      score: scoreFromLogit(logit, o.temperature, o.bias),
      truncated: evaluation.truncated[index] ?? false,
      ...(evaluation.chunks?.[index] ? { chunk: evaluation.chunks[index] } : {}),
    }));
    return { results, language: routes[0]?.language, temperature: o.temperature, topP: o.topP, threshold: o.threshold, pairs: plan.prepared.length, tokens, queueMs: job.queueMs, inferenceMs: job.inferenceMs };
  }

  /** One query against many documents: best first, then top_p, threshold and top_n. */
  async rerank(query: string, documents: readonly string[], knobs: Knobs, signal?: AbortSignal): Promise<ServiceOutcome<ServiceResult>> {
    const r = await this.run([query], documents, knobs, signal);
    const selected = select(rankByLogit(r.results), { topP: r.topP, threshold: r.threshold, topN: knobs.topN, temperature: r.temperature });
    return { ...r, results: selected };
  }

  /** Pairs in input order: one query for all documents, or one query per document. */
  async score(queries: readonly string[], documents: readonly string[], knobs: Knobs, signal?: AbortSignal): Promise<ServiceOutcome<ServiceResult>> {
    if (queries.length !== 1 && queries.length !== documents.length) {
      throw new ValidationError(`got ${queries.length} queries for ${documents.length} documents: give one query, or one per document`, "queries");
    }
    return this.run(queries, documents, knobs, signal);
  }
}
