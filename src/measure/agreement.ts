/** How far one engine's log-odds are from a reference engine's on the same pairs. */
export interface Agreement {
  maxAbsDz: number;
  p99AbsDz: number;
  /** Kendall's tau-b of the two orderings (1: the same order). */
  kendallTau: number;
  /** Documents the two top-10s share, out of min(10, n). */
  top10Overlap: number;
}

/** Kendall's tau-b: concordant minus discordant pairs, corrected for ties (O(n²): bench sizes). */
export function kendallTau(a: readonly number[], b: readonly number[]): number {
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < a.length; i++) {
    for (let j = i + 1; j < a.length; j++) {
      const da = Math.sign((a[i] ?? 0) - (a[j] ?? 0));
      const db = Math.sign((b[i] ?? 0) - (b[j] ?? 0));
      if (da === 0 && db === 0) continue;
      if (da === 0) tiesA++;
      else if (db === 0) tiesB++;
      else if (da === db) concordant++;
      else discordant++;
    }
  }
  const denominator = Math.sqrt((concordant + discordant + tiesA) * (concordant + discordant + tiesB));
  return denominator === 0 ? 1 : (concordant - discordant) / denominator;
}

const topK = (z: readonly number[], k: number): Set<number> =>
  new Set(
    z
      .map((v, i) => [v, i] as const)
      .sort((x, y) => y[0] - x[0] || x[1] - y[1])
      .slice(0, k)
      .map(([, i]) => i),
  );

export function agreement(z: readonly number[], reference: readonly number[]): Agreement {
  const diffs = z.map((v, i) => Math.abs(v - (reference[i] ?? Number.NaN))).sort((x, y) => x - y);
  const k = Math.min(10, z.length);
  const mine = topK(z, k);
  const theirs = topK(reference, k);
  return {
    maxAbsDz: diffs.at(-1) ?? 0,
    p99AbsDz: diffs[Math.min(diffs.length - 1, Math.ceil(0.99 * diffs.length) - 1)] ?? 0,
    kendallTau: kendallTau(z, reference),
    top10Overlap: [...mine].filter((i) => theirs.has(i)).length,
  };
}

/**
 * What a faster mode must keep against exact (onnx fp32) log-odds on the same pairs to be one we
 * recommend: |Δz| at most 0.5 (P(yes) moves by at most 0.125), Kendall tau at least 0.9 and at
 * most 2 of the top 10 exchanged. For scale: the llama.cpp engine's own Q8_0 arithmetic measured
 * 0.16 / 0.95 / 10 on the plain 0.6B bench workload and 0.57 / 0.87 / 8 with damped outliers.
 */
const AGREEMENT_BARS = { maxAbsDz: 0.5, kendallTau: 0.9, top10Missed: 2 } as const;

/** The bars `a` misses, in words (empty: it meets them all); `n` is the number of documents. */
export function missedBars(a: Agreement, n: number): string[] {
  const missed: string[] = [];
  if (!(a.maxAbsDz <= AGREEMENT_BARS.maxAbsDz)) missed.push(`max |dz| ${a.maxAbsDz.toFixed(3)} > ${AGREEMENT_BARS.maxAbsDz}`);
  if (!(a.kendallTau >= AGREEMENT_BARS.kendallTau)) missed.push(`Kendall tau ${a.kendallTau.toFixed(3)} < ${AGREEMENT_BARS.kendallTau}`);
  const needed = Math.max(0, Math.min(10, n) - AGREEMENT_BARS.top10Missed);
  if (a.top10Overlap < needed) missed.push(`top-10 overlap ${a.top10Overlap} < ${needed}`);
  return missed;
}
