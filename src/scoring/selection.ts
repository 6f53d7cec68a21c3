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
