import type { Command } from "commander";
import { RerankError, ValidationError } from "../errors/errors.js";
import type { EvalSet } from "../eval/dataset.js";
import { loadEvalSet } from "../eval/dataset.js";
import { LogitStore, modelIdentity } from "../eval/logit-store.js";
import type { Measure } from "../eval/metrics.js";
import { DEFAULT_MEASURES, parseMeasures } from "../eval/metrics.js";
import type { Report } from "../eval/report.js";
import { writeReport } from "../eval/report.js";
import type { ScoringConfig, SetScores } from "../eval/score-set.js";
import { scoreSet } from "../eval/score-set.js";
import { CachedSource } from "../pipeline/log-odds.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { ScoringStack } from "../compose/stack.js";
import { intArg } from "./flags.js";
import { progressBar } from "./progress.js";

/** Where eval, tune and calibrate keep log-odds unless told otherwise. */
export const DEFAULT_CACHE = ".qwen-rerank-cache/logits.jsonl";

export interface DatasetFlags {
  config?: string;
  dataset?: string;
  run?: string;
  qrels?: string;
  split: string;
  topK: number;
  maxQueries?: number;
  measure?: string[];
  relevanceLevel: number;
  cache: string | false;
  report?: string;
  json?: boolean;
}

/** Where a BEIR folder's candidates and judgements come from: eval, tune, calibrate and doctor. */
export function addCandidateFlags(cmd: Command): Command {
  return cmd
    .option("--run <file>", "first-stage TREC run (qid Q0 docno rank score tag) whose top-k documents are reranked")
    .option("--qrels <file>", "relevance judgements (TREC qrels or BEIR TSV); default: the BEIR folder's qrels/SPLIT.tsv")
    .option("--split <name>", "BEIR qrels split", "test")
    .option("--top-k <n>", "candidates per query taken from the run", intArg(1, 100_000), 100);
}

/** Flags for reading a data set and writing results, shared by eval, tune and calibrate. */
export function addDatasetFlags(cmd: Command, withMeasures = true): Command {
  cmd.option("--dataset <path>", "BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or JSONL file of {query, documents: [{text, relevance}]}");
  addCandidateFlags(cmd)
    .option("--max-queries <n>", "use only the first n queries (a quick look before a full run; default: all)", intArg(1))
    .option("--relevance-level <n>", "judged relevance at or above which a document is relevant (trec_eval -l)", intArg(-1000, 1000), 1);
  if (withMeasures) cmd.option("--measure <names...>", "measures, trec_eval style: ndcg_cut.10 map recip_rank P.5,10 recall.100 success.1 set_F ... (also ndcg@10, mrr)");
  return cmd
    .option("--cache <file>", "log-odds already computed (reused, and appended to; makes runs resumable)", DEFAULT_CACHE)
    .option("--no-cache", "keep log-odds in memory only")
    .option("--report <file.html>", "write a self-contained HTML report with charts")
    .option("--json", "print the results as JSON on stdout");
}

export function measuresFrom(flags: Pick<DatasetFlags, "measure">, fallback = DEFAULT_MEASURES): Measure[] {
  return parseMeasures(flags.measure && flags.measure.length > 0 ? flags.measure : fallback);
}

export async function loadSetFrom(flags: DatasetFlags): Promise<EvalSet> {
  if (!flags.dataset) throw new ValidationError("--dataset DIR|FILE is required (a BEIR folder with --run, or a JSONL file)");
  const set = await loadEvalSet({ dataset: flags.dataset, run: flags.run, qrels: flags.qrels, split: flags.split, topK: flags.topK });
  if (flags.maxQueries === undefined || flags.maxQueries >= set.queries.length) return set;
  // The first stage is cut to the same queries, so that before and after average over the same set.
  const queries = set.queries.slice(0, flags.maxQueries);
  const kept = new Set(queries.map((q) => q.qid));
  return { ...set, queries, firstStage: new Map([...set.firstStage].filter(([qid]) => kept.has(qid))), source: `${set.source} (first ${queries.length} queries)` };
}

/**
 * The pipeline of eval, tune and calibrate: log-odds from the store (`--cache FILE`, or memory with
 * --no-cache) in front of the engine, so runs resume and configurations share pairs.
 */
export function storedPipeline(stack: ScoringStack, model: string, cache: string | false): { pipeline: Pipeline; store: LogitStore; pairsPerCall: number | undefined } {
  const store = LogitStore.open(cache === false ? undefined : cache, modelIdentity(model, () => stack.engine.info));
  return { pipeline: stack.pipeline.withSource(new CachedSource(store, stack.engineSource)), store, pairsPerCall: stack.engineSource.preferredCallPairs };
}

/**
 * Scores a set with a progress bar (on a terminal). Ctrl-C stops at once: the queries already
 * finished are in the cache, the one in flight is scored again next time, and the message says so.
 */
export async function scoreWithProgress(stored: { pipeline: Pipeline; store: LogitStore; pairsPerCall: number | undefined }, set: EvalSet, config: ScoringConfig, label: string): Promise<SetScores> {
  const { pipeline, store, pairsPerCall } = stored;
  const total = set.queries.reduce((n, q) => n + q.candidates.length, 0);
  const bar = progressBar(total, label);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    return await scoreSet(pipeline, set, config, { signal: controller.signal, onProgress: (d) => bar.update(d), pairsPerCall });
  } catch (error) {
    if (controller.signal.aborted) {
      const where = store.path ? `${store.size} pairs are stored in ${store.path}; run the same command again to continue` : "nothing was kept (--no-cache)";
      throw new RerankError("cancelled", `interrupted: ${where}`, { cause: error });
    }
    throw error;
  } finally {
    bar.stop();
    process.removeListener("SIGINT", onSigint);
  }
}

export async function maybeWriteReport(path: string | undefined, report: () => Report): Promise<void> {
  if (!path) return;
  await writeReport(path, report());
  process.stderr.write(`qwen-rerank: wrote report ${path}\n`);
}

/** A fixed-width text table. */
export function textTable(columns: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join("  ");
  return `${[line(columns), ...cells.map(line)].join("\n")}\n`;
}

export { percentileOf as percentile } from "../monitor/monitor.js";
