import type { CallKnobs } from "../config/knobs.js";
import { RerankError } from "../errors/errors.js";
import type { Pipeline, ResolvedKnobs } from "../pipeline/pipeline.js";
import type { EvalSet } from "./dataset.js";

/** What changes the log-odds of a pair (everything else is applied afterwards). */
export type ScoringConfig = Pick<CallKnobs, "instruction" | "preset" | "language" | "maxLength" | "overflow">;

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
  signal?: AbortSignal | undefined;
  /** Pairs done so far (from the store or the engine) of the whole set. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * Scores every candidate of every query under one scoring configuration, through `pipeline`
 * (whose source is usually the log-odds store in front of the engine: pairs scored before are
 * answered from it, fresh ones recorded). Each query is one call: its pairs share the prompt head.
 */
export async function scoreSet(pipeline: Pipeline, set: EvalSet, config: ScoringConfig, options: ScoreSetOptions = {}): Promise<SetScores> {
  const knobs = pipeline.resolve(config);
  const total = set.queries.reduce((n, q) => n + q.candidates.length, 0);
  const out: SetScores = { logits: new Map(), knobs, pairs: total, cachedPairs: 0, scoredPairs: 0, evaluatedTokens: 0, seconds: 0, queryMs: [], truncatedPairs: 0 };
  let done = 0;
  for (const query of set.queries) {
    if (options.signal?.aborted) throw new RerankError("cancelled", "interrupted");
    const started = performance.now();
    const result = await pipeline.run({
      queries: [query.text],
      documents: query.candidates.map((c) => c.text),
      knobs: config,
      order: "input",
      signal: options.signal,
      onProgress: (d, n) => options.onProgress?.(done + Math.round((d / n) * query.candidates.length), total),
    });
    const fresh = result.pairs - result.cached;
    if (fresh > 0) {
      const ms = performance.now() - started;
      out.queryMs.push(ms);
      out.seconds += ms / 1000;
      out.evaluatedTokens += result.stats.evaluatedTokens;
      out.scoredPairs += fresh;
    }
    out.cachedPairs += result.cached;
    out.truncatedPairs += result.results.filter((r) => r.truncated).length;
    out.logits.set(query.qid, Float64Array.from(result.results, (r) => r.logit));
    done += query.candidates.length;
    options.onProgress?.(done, total);
  }
  return out;
}
