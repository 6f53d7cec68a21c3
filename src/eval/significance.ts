import jstat from "jstat";
import { uniformStream } from "../testmodel/rng.js";
import type { Measure, MetricReport } from "./metrics.js";

export interface PairedTest {
  /** Queries compared. */
  n: number;
  /** Mean of (b - a) over the queries. */
  meanDelta: number;
  /** Paired t statistic and its degrees of freedom (n - 1). */
  t: number;
  df: number;
  /** Two-sided p-value of the paired t-test. */
  pTTest: number;
  /** Two-sided p-value of the paired randomisation (sign-flip) test. */
  pRandomisation: number;
  /** Sign flips drawn for the randomisation test. */
  trials: number;
}

/**
 * Paired significance of b over a (one value per query, same order): a paired t-test, and
 * Fisher's randomisation test, which IR evaluation prefers because it assumes no distribution
 * (Smucker, Allan and Carterette, CIKM 2007). The randomisation test is seeded, so reports repeat.
 */
export function pairedTest(a: readonly number[], b: readonly number[], trials = 10_000, seed = 42): PairedTest {
  if (a.length !== b.length) throw new Error("paired test: the two lists must be the same length");
  const d = a.map((x, i) => (b[i] ?? 0) - x);
  const n = d.length;
  const mean = n === 0 ? 0 : d.reduce((s, x) => s + x, 0) / n;
  const variance = n < 2 ? 0 : d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  let t: number;
  let pTTest: number;
  if (n < 2) {
    t = 0;
    pTTest = 1;
  } else if (variance === 0) {
    // Every query moved by the same amount: no noise to test against.
    t = mean === 0 ? 0 : Math.sign(mean) * Number.POSITIVE_INFINITY;
    pTTest = mean === 0 ? 1 : 0;
  } else {
    t = mean / Math.sqrt(variance / n);
    pTTest = Math.min(1, 2 * jstat.jStat.studentt.cdf(-Math.abs(t), n - 1));
  }
  const observed = Math.abs(d.reduce((s, x) => s + x, 0));
  const random = uniformStream(seed);
  let extreme = 0;
  for (let k = 0; k < trials; k++) {
    let sum = 0;
    for (const x of d) sum += random() < 0.5 ? -x : x;
    // A small tolerance keeps floating-point noise from splitting exact ties.
    if (Math.abs(sum) >= observed - 1e-12) extreme++;
  }
  return { n, meanDelta: mean, t, df: Math.max(0, n - 1), pTTest, pRandomisation: (extreme + 1) / (trials + 1), trials };
}

/** Per measure: first stage, reranked, the change and its significance. */
export interface MeasureComparison {
  firstStage: number;
  reranked: number;
  delta: number;
  pTTest: number;
  pRandomisation: number;
}

/** Compares two evaluations measure by measure, with paired tests over the queries both evaluated. */
export function compareReports(before: MetricReport, after: MetricReport, measures: readonly Measure[]): Record<string, MeasureComparison> {
  const qids = [...after.perQuery.keys()].filter((q) => before.perQuery.has(q));
  const out: Record<string, MeasureComparison> = {};
  for (const m of measures) {
    const test = pairedTest(
      qids.map((q) => before.perQuery.get(q)?.[m.name] ?? 0),
      qids.map((q) => after.perQuery.get(q)?.[m.name] ?? 0),
    );
    const a = before.mean[m.name] ?? 0;
    const b = after.mean[m.name] ?? 0;
    out[m.name] = { firstStage: a, reranked: b, delta: b - a, pTTest: test.pTTest, pRandomisation: test.pRandomisation };
  }
  return out;
}
