import { ValidationError } from "../errors/errors.js";
import type { Qrels, Run, RunEntry } from "./trec.js";
import { trecOrder } from "./trec.js";

/** Measure families with cutoffs, and trec_eval's default cutoffs for each. */
const CUT_FAMILIES: Record<string, number[]> = {
  ndcg_cut: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  map_cut: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  P: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  recall: [5, 10, 15, 20, 30, 100, 200, 500, 1000],
  success: [1, 5, 10],
};

/** Measures without cutoffs. */
const SINGLE = ["map", "recip_rank", "ndcg", "set_P", "set_recall", "set_F", "num_ret", "num_rel", "num_rel_ret"] as const;

/** Friendly spellings: ndcg@10, mrr, p@5, ... */
const ALIASES: Record<string, string> = { mrr: "recip_rank", ndcg: "ndcg", map: "map", p: "P", precision: "P", recall: "recall", success: "success" };
const AT_FAMILIES: Record<string, string> = { ndcg: "ndcg_cut", map: "map_cut", p: "P", precision: "P", recall: "recall", success: "success" };

/** One measure to compute: its output name (trec_eval's, e.g. `ndcg_cut_10`), family and cutoff. */
export interface Measure {
  name: string;
  family: string;
  cutoff?: number;
}

const MEASURE_HELP =
  "measures: map, recip_rank (mrr), ndcg, set_P, set_recall, set_F, num_ret, num_rel, num_rel_ret, and ndcg_cut.K, map_cut.K, P.K, recall.K, success.K (K: one or more cutoffs, e.g. P.5,10; or ndcg@10)";

/**
 * Parses measure specs as trec_eval's -m does (`ndcg_cut.10`, `P.5,10`, a family alone for its
 * default cutoffs) and also `ndcg_cut_10` and `ndcg@10`. Duplicates are dropped, order kept.
 */
export function parseMeasures(specs: readonly string[]): Measure[] {
  const out: Measure[] = [];
  const add = (m: Measure) => {
    if (!out.some((o) => o.name === m.name)) out.push(m);
  };
  for (const raw of specs.flatMap((s) => s.split(/\s+/)).filter((s) => s !== "")) {
    const at = /^([a-zA-Z_]+)@(\d+)$/.exec(raw);
    const dotted = /^([a-zA-Z_]+)\.([\d,]+)$/.exec(raw);
    const underscored = /^(ndcg_cut|map_cut|P|recall|success)_(\d+)$/.exec(raw);
    let family: string | undefined;
    let cutoffs: string[] | undefined;
    if (at?.[1] && at[2]) {
      family = AT_FAMILIES[at[1].toLowerCase()];
      cutoffs = [at[2]];
    } else if (dotted?.[1] && dotted[2]) {
      family = dotted[1];
      cutoffs = dotted[2].split(",");
    } else if (underscored?.[1] && underscored[2]) {
      family = underscored[1];
      cutoffs = [underscored[2]];
    } else {
      family = (SINGLE as readonly string[]).includes(raw) || raw in CUT_FAMILIES ? raw : ALIASES[raw.toLowerCase()];
    }
    if (family === undefined) throw new ValidationError(`unknown measure "${raw}"; ${MEASURE_HELP}`, "measure");
    if (family in CUT_FAMILIES) {
      const ks = cutoffs ?? CUT_FAMILIES[family]?.map(String) ?? [];
      for (const k of ks) {
        const n = Number(k);
        if (!Number.isInteger(n) || n < 1) throw new ValidationError(`"${raw}": cutoffs must be positive integers`, "measure");
        add({ name: `${family}_${n}`, family, cutoff: n });
      }
    } else {
      if (cutoffs !== undefined) throw new ValidationError(`"${raw}": ${family} takes no cutoff; ${MEASURE_HELP}`, "measure");
      add({ name: family, family });
    }
  }
  if (out.length === 0) throw new ValidationError(`no measure given; ${MEASURE_HELP}`, "measure");
  return out;
}

/** The default measures of `qwen-rerank eval`. */
export const DEFAULT_MEASURES = ["ndcg_cut.10", "map", "recip_rank", "P.10", "recall.100"];

export interface EvalOptions {
  /** Judged relevance at or above which a document counts as relevant (trec_eval -l). Default 1. */
  relevanceLevel?: number;
  /** Average over every query of the qrels, a query missing from the run scoring 0 (trec_eval -c). Default false. */
  complete?: boolean;
}

export interface MetricReport {
  /** Per query (in the order evaluated), measure name -> value. */
  perQuery: Map<string, Record<string, number>>;
  /** Mean of each measure over the evaluated queries. */
  mean: Record<string, number>;
  /** Queries averaged over (trec_eval's num_q). */
  queries: number;
}

const dcgAt = (gains: readonly number[], k: number): number => {
  let sum = 0;
  const n = Math.min(k, gains.length);
  // trec_eval: document at 0-based position i has rank i + 1 and discount log2(i + 2); only positive gains count.
  for (let i = 0; i < n; i++) if ((gains[i] ?? 0) > 0) sum += (gains[i] ?? 0) / Math.log2(i + 2);
  return sum;
};

/** Every measure of one query's ranking, with trec_eval's semantics. */
export function evaluateQuery(entries: readonly RunEntry[], judged: ReadonlyMap<string, number>, measures: readonly Measure[], relevanceLevel = 1): Record<string, number> {
  const ranked = trecOrder(entries);
  const rels = ranked.map((e) => judged.get(e.docid) ?? 0);
  const isRel = rels.map((r) => r >= relevanceLevel);
  let numRel = 0;
  for (const r of judged.values()) if (r >= relevanceLevel) numRel++;
  const ideal = [...judged.values()].filter((r) => r > 0).sort((a, b) => b - a);
  const relRetAt = (k: number) => isRel.slice(0, k).filter(Boolean).length;
  const apAt = (k: number) => {
    if (numRel === 0) return 0;
    let found = 0;
    let sum = 0;
    for (let i = 0; i < Math.min(k, isRel.length); i++) {
      if (isRel[i]) sum += ++found / (i + 1);
    }
    return sum / numRel;
  };
  const ndcgAt = (k: number) => {
    const idcg = dcgAt(ideal, k);
    return idcg > 0 ? dcgAt(rels, k) / idcg : 0;
  };
  const numRet = ranked.length;
  const relRet = relRetAt(numRet);
  const out: Record<string, number> = {};
  for (const m of measures) {
    const k = m.cutoff ?? Number.POSITIVE_INFINITY;
    switch (m.family) {
      case "map":
        out[m.name] = apAt(numRet);
        break;
      case "map_cut":
        out[m.name] = apAt(k);
        break;
      case "recip_rank": {
        const first = isRel.indexOf(true);
        out[m.name] = first < 0 ? 0 : 1 / (first + 1);
        break;
      }
      case "ndcg":
        out[m.name] = ndcgAt(Math.max(numRet, ideal.length));
        break;
      case "ndcg_cut":
        out[m.name] = ndcgAt(k);
        break;
      case "P":
        out[m.name] = relRetAt(k) / k;
        break;
      case "recall":
        out[m.name] = numRel === 0 ? 0 : relRetAt(k) / numRel;
        break;
      case "success":
        out[m.name] = relRetAt(k) > 0 ? 1 : 0;
        break;
      case "set_P":
        out[m.name] = numRet === 0 ? 0 : relRet / numRet;
        break;
      case "set_recall":
        out[m.name] = numRel === 0 ? 0 : relRet / numRel;
        break;
      case "set_F": {
        const p = numRet === 0 ? 0 : relRet / numRet;
        const r = numRel === 0 ? 0 : relRet / numRel;
        out[m.name] = p + r === 0 ? 0 : (2 * p * r) / (p + r);
        break;
      }
      case "num_ret":
        out[m.name] = numRet;
        break;
      case "num_rel":
        out[m.name] = numRel;
        break;
      case "num_rel_ret":
        out[m.name] = relRet;
        break;
      default:
        throw new ValidationError(`unknown measure family ${m.family}`, "measure");
    }
  }
  return out;
}

/**
 * Evaluates a run against qrels as trec_eval does: queries of the run that have judgements (or,
 * with `complete`, every judged query, missing ones scoring 0), documents ordered by score
 * descending with ties broken by document id descending, unjudged documents non-relevant,
 * nDCG with linear gain (the judged grade) and a log2(rank + 1) discount.
 */
export function evaluateRun(qrels: Qrels, run: Run, measures: readonly Measure[], options: EvalOptions = {}): MetricReport {
  const level = options.relevanceLevel ?? 1;
  const qids = options.complete ? [...qrels.keys()] : [...run.keys()].filter((q) => qrels.has(q));
  const perQuery = new Map<string, Record<string, number>>();
  for (const qid of qids) perQuery.set(qid, evaluateQuery(run.get(qid) ?? [], qrels.get(qid) ?? new Map(), measures, level));
  const mean: Record<string, number> = {};
  for (const m of measures) {
    let sum = 0;
    for (const v of perQuery.values()) sum += v[m.name] ?? 0;
    // trec_eval sums the count measures over queries instead of averaging them.
    mean[m.name] = m.family.startsWith("num_") ? sum : qids.length === 0 ? 0 : sum / qids.length;
  }
  return { perQuery, mean, queries: qids.length };
}

/** trec_eval's output lines: `measure <tab> qid|all <tab> value` (counts as integers, the rest to 4 places). */
export function formatTrecEval(report: MetricReport, measures: readonly Measure[], perQuery: boolean): string {
  const fmt = (m: Measure, v: number) => (m.family.startsWith("num_") ? String(Math.round(v)) : v.toFixed(4));
  const lines: string[] = [];
  if (perQuery) {
    for (const [qid, values] of report.perQuery) for (const m of measures) lines.push(`${m.name.padEnd(22)}\t${qid}\t${fmt(m, values[m.name] ?? 0)}`);
  }
  lines.push(`${"num_q".padEnd(22)}\tall\t${report.queries}`);
  for (const m of measures) lines.push(`${m.name.padEnd(22)}\tall\t${fmt(m, report.mean[m.name] ?? 0)}`);
  return `${lines.join("\n")}\n`;
}
