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

/** How many documents each selection knob left out of an answer (0 when it removed none). */
export interface Omitted {
  topP: number;
  threshold: number;
  topN: number;
}

/** Selection on a ranked list: top_p, then threshold, then top_n (docs/tuning.md). */
export function select<T extends Ranked & { score: number }>(ranked: readonly T[], o: SelectionOptions): T[] {
  return selectCounting(ranked, o).kept;
}

/** The same selection, with what each knob left out, so that an answer can say so. */
export function selectCounting<T extends Ranked & { score: number }>(ranked: readonly T[], o: SelectionOptions): { kept: T[]; omitted: Omitted } {
  const nucleus = takeTopP(ranked, o.topP, o.temperature ?? 1);
  const passed = applyThreshold(nucleus, o.threshold);
  const kept = takeTopN(passed, o.topN);
  return { kept, omitted: { topP: ranked.length - nucleus.length, threshold: nucleus.length - passed.length, topN: passed.length - kept.length } };
}

/**
 * What the selection knobs left out, in one line for people ("top_p 0.8 left out 1 of 3
 * documents"), or undefined when every document is there.
 */
export function describeOmitted(omitted: Omitted, knobs: SelectionOptions, total: number): string | undefined {
  const parts = [
    omitted.topP > 0 ? `top_p ${knobs.topP} left out ${omitted.topP}` : undefined,
    omitted.threshold > 0 ? `threshold ${knobs.threshold} left out ${omitted.threshold}` : undefined,
    omitted.topN > 0 ? `top_n ${knobs.topN} left out ${omitted.topN}` : undefined,
  ].filter((p) => p !== undefined);
  if (parts.length === 0) return undefined;
  const shown = total - omitted.topP - omitted.threshold - omitted.topN;
  return `${shown} of ${total} documents returned: ${parts.join(", ")}`;
}
