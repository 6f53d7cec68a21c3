import { RerankError } from "../errors/errors.js";
import type { Overflow } from "../prompt/chunking.js";
import type { Reranker, ResolvedKnobs } from "../reranker.js";
import type { EvalSet } from "./dataset.js";
import type { LogitStore } from "./logit-store.js";

/** What changes the log-odds of a pair (everything else is applied afterwards). */
export interface ScoringConfig {
  instruction?: string | undefined;
  preset?: string | undefined;
  maxLength?: number | undefined;
  overflow?: Overflow | undefined;
}

export interface SetScores {
  /** Per query id, the log-odds of its candidates in candidate order. */
  logits: Map<string, Float64Array>;
  /** The knobs the scores were computed with (instruction, max_length, and the temperature to use). */
  knobs: ResolvedKnobs;
  pairs: number;
  /** Pairs answered by the store (an earlier or interrupted run). */
  cachedPairs: number;
  /** Engine work of this run. */
  scoredPairs: number;
  evaluatedTokens: number;
  seconds: number;
  /** Wall time of each query that reached the engine, in ms. */
  queryMs: number[];
  truncatedPairs: number;
}

export interface ScoreSetOptions {
  store: LogitStore;
  signal?: AbortSignal | undefined;
  /** Pairs done so far (from the store or the engine) of the whole set. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * Scores every candidate of every query under one scoring configuration. Each query is one
 * engine call (its pairs share the prompt prefix); the store answers pairs scored before and
 * records fresh ones as soon as their query is done.
 */
export async function scoreSet(reranker: Reranker, set: EvalSet, config: ScoringConfig, options: ScoreSetOptions): Promise<SetScores> {
  const knobs = reranker.resolveOptions({ instruction: config.instruction, preset: config.preset, maxLength: config.maxLength });
  const total = set.queries.reduce((n, q) => n + q.candidates.length, 0);
  const out: SetScores = { logits: new Map(), knobs, pairs: total, cachedPairs: 0, scoredPairs: 0, evaluatedTokens: 0, seconds: 0, queryMs: [], truncatedPairs: 0 };
  let done = 0;
  for (const query of set.queries) {
    if (options.signal?.aborted) throw new RerankError("cancelled", "interrupted");
    const plan = reranker.plan(
      query.candidates.map((c) => ({ instruction: knobs.instruction, query: query.text, document: c.text })),
      knobs.maxLength,
      config.overflow ?? "truncate",
    );
    const started = performance.now();
    const evaluation = await reranker.evaluatePrepared(plan.prepared, {
      cache: options.store,
      signal: options.signal,
      onProgress: (d, n) => options.onProgress?.(done + Math.round((d / n) * query.candidates.length), total),
    });
    const fresh = plan.prepared.length - (evaluation.cached ?? 0);
    if (fresh > 0) {
      const ms = performance.now() - started;
      out.queryMs.push(ms);
      out.seconds += ms / 1000;
      out.evaluatedTokens += evaluation.stats.evaluatedTokens;
      out.scoredPairs += fresh;
    }
    out.cachedPairs += evaluation.cached ?? 0;
    const reduced = reranker.reduce(plan, evaluation);
    out.truncatedPairs += reduced.truncated.filter(Boolean).length;
    out.logits.set(query.qid, reduced.logits);
    done += query.candidates.length;
    options.onProgress?.(done, total);
  }
  return out;
}
