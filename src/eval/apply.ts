import { rankByLogit, select } from "../scoring/selection.js";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { EvalSet } from "./dataset.js";
import type { Run } from "./trec.js";

/** The knobs applied after scoring: they change scores and which documents are kept, never the order. */
export interface PostHocKnobs {
  /** Default 1. */
  temperature?: number | undefined;
  /** Default 0. */
  bias?: number | undefined;
  /** Default off. */
  topP?: number | undefined;
  /** Default none. */
  threshold?: number | undefined;
}

/**
 * The reranked run of a set: each query's candidates ordered by log-odds, after top_p and
 * threshold exactly as the reranker applies them. Run scores are the log-odds.
 */
export function rerankedRun(set: EvalSet, logits: ReadonlyMap<string, Float64Array>, knobs: PostHocKnobs = {}): Run {
  const run: Run = new Map();
  const t = knobs.temperature ?? 1;
  for (const q of set.queries) {
    const z = logits.get(q.qid);
    if (!z) continue;
    const results = q.candidates.map((c, index) => ({ index, docid: c.docid, logit: z[index] ?? Number.NaN, score: scoreFromLogit(z[index] ?? Number.NaN, t, knobs.bias ?? 0) }));
    const kept = select(rankByLogit(results), { topP: knobs.topP, threshold: knobs.threshold, temperature: t });
    run.set(
      q.qid,
      kept.map((r) => ({ docid: r.docid, score: r.logit })),
    );
  }
  return run;
}

export interface LabelledScores {
  logits: Float64Array;
  /** 1 for relevant (judged at or above the level), else 0. */
  labels: Float64Array;
  /** The query of each pair. */
  qids: string[];
}

/**
 * Every scored pair with its binary label. Unjudged documents count as non-relevant (as in the
 * metrics) unless `judgedOnly`, which leaves them out.
 */
export function labelledScores(set: EvalSet, logits: ReadonlyMap<string, Float64Array>, relevanceLevel = 1, judgedOnly = false, keep?: (qid: string) => boolean): LabelledScores {
  const zs: number[] = [];
  const ys: number[] = [];
  const qids: string[] = [];
  for (const q of set.queries) {
    if (keep && !keep(q.qid)) continue;
    const z = logits.get(q.qid);
    const judged = set.qrels.get(q.qid);
    if (!z) continue;
    q.candidates.forEach((c, i) => {
      const rel = judged?.get(c.docid);
      if (judgedOnly && rel === undefined) return;
      const value = z[i];
      if (value === undefined || Number.isNaN(value)) return;
      zs.push(value);
      ys.push((rel ?? 0) >= relevanceLevel ? 1 : 0);
      qids.push(q.qid);
    });
  }
  return { logits: Float64Array.from(zs), labels: Float64Array.from(ys), qids };
}
