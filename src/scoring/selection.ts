export interface Ranked {
  index: number;
  logit: number;
}

/**
 * Orders results by log-odds, best first. Ties keep input order, so the same input always gives
 * the same output order.
 */
export function rankByLogit<T extends Ranked>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => b.logit - a.logit || a.index - b.index);
}

/** Keeps the n best of an already ranked list (all when n is undefined). */
export function takeTopN<T>(ranked: readonly T[], topN: number | undefined): T[] {
  return topN === undefined ? [...ranked] : ranked.slice(0, topN);
}

/**
 * Nucleus selection over the documents of one request (docs/tuning.md, "top_p, threshold, top_n"): weights
 * w_i = softmax(z_i / T) over the documents, keep the best until their cumulative weight reaches
 * topP; always at least one. Expects a list ranked best first.
 */
export function takeTopP<T extends Ranked>(ranked: readonly T[], topP: number | undefined, temperature = 1): T[] {
  if (topP === undefined || topP >= 1 || ranked.length === 0) return [...ranked];
  const max = ranked[0]?.logit ?? 0;
  const weights = ranked.map((r) => Math.exp((r.logit - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let cumulative = 0;
  const kept: T[] = [];
  for (let i = 0; i < ranked.length; i++) {
    kept.push(ranked[i] as T);
    cumulative += (weights[i] ?? 0) / total;
    if (cumulative >= topP) break;
  }
  return kept;
}

/** Drops results whose (calibrated) score is below the threshold. */
export function applyThreshold<T extends { score: number }>(ranked: readonly T[], threshold: number | undefined): T[] {
  return threshold === undefined ? [...ranked] : ranked.filter((r) => r.score >= threshold);
}

export interface SelectionOptions {
  topP?: number | undefined;
  threshold?: number | undefined;
  topN?: number | undefined;
  temperature?: number | undefined;
}

/** Selection on a ranked list: top_p, then threshold, then top_n (docs/tuning.md). */
export function select<T extends Ranked & { score: number }>(ranked: readonly T[], o: SelectionOptions): T[] {
  return takeTopN(applyThreshold(takeTopP(ranked, o.topP, o.temperature ?? 1), o.threshold), o.topN);
}
