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
  /**
   * Pairs of several queries per pipeline call, two calls in flight: with a queue (--queue), the
   * workers need many jobs queued at once, not one query's few. Per-query latencies are then not
   * measured. Default: one query per call.
   */
  pairsPerCall?: number | undefined;
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
  if (options.pairsPerCall !== undefined) return scoreInGroups(pipeline, set, config, options, options.pairsPerCall, out);
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

/** Consecutive queries, cut into groups of at least `size` pairs. */
function groupsOf(queries: EvalSet["queries"], size: number): Array<EvalSet["queries"]> {
  const groups: Array<EvalSet["queries"]> = [];
  let current: EvalSet["queries"] = [];
  let pairs = 0;
  for (const query of queries) {
    current.push(query);
    pairs += query.candidates.length;
    if (pairs >= size) {
      groups.push(current);
      current = [];
      pairs = 0;
    }
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

async function scoreInGroups(pipeline: Pipeline, set: EvalSet, config: ScoringConfig, options: ScoreSetOptions, size: number, out: SetScores): Promise<SetScores> {
  const started = performance.now();
  const groups = groupsOf(set.queries, Math.max(1, size));
  const progress = new Array<number>(groups.length).fill(0);
  const report = () => options.onProgress?.(progress.reduce((a, b) => a + b, 0), out.pairs);
  const scoreGroup = async (g: number) => {
    const queries = groups[g] ?? [];
    const result = await pipeline.run({
      queries: queries.flatMap((q) => q.candidates.map(() => q.text)),
      documents: queries.flatMap((q) => q.candidates.map((c) => c.text)),
      knobs: config,
      order: "input",
      signal: options.signal,
      onProgress: (d) => {
        progress[g] = d;
        report();
      },
    });
    out.scoredPairs += result.pairs - result.cached;
    out.evaluatedTokens += result.stats.evaluatedTokens;
    out.cachedPairs += result.cached;
    out.truncatedPairs += result.results.filter((r) => r.truncated).length;
    let k = 0;
    for (const q of queries) {
      out.logits.set(q.qid, Float64Array.from(result.results.slice(k, k + q.candidates.length), (r) => r.logit));
      k += q.candidates.length;
    }
  };
  // Two calls in flight: the next group's jobs are queued while the last jobs of this one finish.
  let next = 0;
  const lane = async () => {
    while (next < groups.length) {
      if (options.signal?.aborted) throw new RerankError("cancelled", "interrupted");
      await scoreGroup(next++);
    }
  };
  await Promise.all([lane(), lane()]);
  if (out.scoredPairs > 0) out.seconds = (performance.now() - started) / 1000;
  // Map order follows the set's, whatever order the groups finished in.
  out.logits = new Map(set.queries.map((q) => [q.qid, out.logits.get(q.qid) ?? new Float64Array(0)]));
  return out;
}
