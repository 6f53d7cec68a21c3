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
 * engine call (its pairs share the prompt prefix); pairs already in the store are not scored
 * again, and fresh ones are stored as soon as their query is done.
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
    const keys = plan.prepared.map((p) => options.store.key(p.tokens));
    const logits = new Float64Array(plan.prepared.length);
    const missing: number[] = [];
    keys.forEach((k, i) => {
      const z = options.store.get(k);
      if (z === undefined) missing.push(i);
      else logits[i] = z;
    });
    const windowsFromStore = plan.prepared.length - missing.length;
    if (missing.length > 0) {
      const started = performance.now();
      const fresh = await reranker.evaluatePrepared(
        missing.map((i) => plan.prepared[i] ?? { tokens: [], truncated: false, key: "" }),
        {
          signal: options.signal,
          onProgress: (d) => options.onProgress?.(done + Math.round((d / missing.length) * query.candidates.length), total),
        },
      );
      const ms = performance.now() - started;
      missing.forEach((i, j) => {
        logits[i] = fresh.logits[j] ?? Number.NaN;
      });
      options.store.add(missing.map((i, j) => [keys[i] ?? "", fresh.logits[j] ?? Number.NaN] as const));
      out.queryMs.push(ms);
      out.seconds += ms / 1000;
      out.evaluatedTokens += fresh.stats.evaluatedTokens;
      out.scoredPairs += missing.length;
    }
    out.cachedPairs += windowsFromStore;
    const reduced = reranker.reduce(plan, { logits, truncated: plan.prepared.map((p) => p.truncated), stats: { evaluatedTokens: 0, pairTokens: 0 } });
    out.truncatedPairs += reduced.truncated.filter(Boolean).length;
    out.logits.set(query.qid, reduced.logits);
    done += query.candidates.length;
    options.onProgress?.(done, total);
  }
  return out;
}
