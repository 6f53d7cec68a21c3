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
