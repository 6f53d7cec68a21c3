import { existsSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { ValidationError } from "../errors/errors.js";
import type { LabelledScores } from "../eval/apply.js";
import { labelledScores, rerankedRun } from "../eval/apply.js";
import type { Calibration } from "../eval/calibration.js";
import { expectedCalibrationError, logLoss, reliability } from "../eval/calibration.js";
import type { EvalSet } from "../eval/dataset.js";
import type { Measure, MetricReport } from "../eval/metrics.js";
import { evaluateRun, formatTrecEval, parseMeasures } from "../eval/metrics.js";
import type { Report, ReportSection } from "../eval/report.js";
import { barChart, deltaChart, reliabilityChart, scoreHistogram } from "../eval/report.js";
import type { MeasureComparison } from "../eval/significance.js";
import { compareReports } from "../eval/significance.js";
import type { Run } from "../eval/trec.js";
import { readQrels, readRun, writeRun } from "../eval/trec.js";
import type { ResolvedKnobs } from "../pipeline/pipeline.js";
import type { ScoringStack } from "../compose/stack.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, measuresFrom, percentile, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, addQueueFlags } from "./flags.js";
import { withModel } from "./model.js";

interface EvalFlags extends DatasetFlags, ModelFlagValues {
  perQuery?: boolean;
  complete?: boolean;
  out?: string;
  /** The old name of --out. */
  output?: string;
}

/** eval without a model: a run against qrels, like trec_eval. */
async function evaluateExistingRun(flags: EvalFlags): Promise<void> {
  if (!flags.qrels || !flags.run) throw new ValidationError("give --qrels FILE and --run FILE to evaluate a run, or --model and --dataset to rerank");
  const measures = measuresFrom(flags);
  const report = evaluateRun(await readQrels(flags.qrels), await readRun(flags.run), measures, { relevanceLevel: flags.relevanceLevel, complete: flags.complete });
  if (flags.json) {
    const out: Record<string, unknown> = { qrels: flags.qrels, run: flags.run, queries: report.queries, measures: report.mean };
    if (flags.perQuery) out.perQuery = Object.fromEntries(report.perQuery);
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(formatTrecEval(report, measures, flags.perQuery ?? false));
  }
  const primary = measures[0];
  await maybeWriteReport(flags.report, () => ({
    title: "qwen-rerank eval",
    subtitle: `${flags.run} against ${flags.qrels}: ${report.queries} queries`,
    sections: [
      { kind: "table", title: "Measures (mean over queries)", columns: ["measure", "value"], rows: measures.map((m) => [m.name, report.mean[m.name] ?? 0]) },
      { kind: "chart", title: "Measures", chart: barChart(measures.map((m) => m.name), [{ label: "mean", data: measures.map((m) => report.mean[m.name] ?? 0) }], "value") },
      ...(primary
        ? [
            {
              kind: "chart" as const,
              title: `${primary.name} per query`,
              chart: barChart([...report.perQuery.keys()], [{ label: primary.name, data: [...report.perQuery.values()].map((v) => v[primary.name] ?? 0) }], primary.name),
            },
          ]
        : []),
    ],
  }));
}

/** trec_eval's `-m` is a measure; here `-m` is --model, as in every command: say so instead of "model file not found". */
function refuseMeasureAsModel(model: string | undefined): void {
  if (model === undefined || existsSync(model)) return;
  try {
    parseMeasures([model]);
  } catch {
    return;
  }
  throw new ValidationError(`"${model}" is a measure, but -m is --model in every qwen-rerank command: give measures with --measure`);
}

/** What a reranking evaluation found. */
interface RerankingOutcome {
  source: string;
  model: { name: string; flavor: string };
  measures: Measure[];
  knobs: ResolvedKnobs;
  run: Run;
  before: MetricReport;
  after: MetricReport;
  comparison: Record<string, MeasureComparison>;
  labelled: LabelledScores;
  calibration: Calibration;
  scoring: {
    pairs: number;
    cachedPairs: number;
    scoredPairs: number;
    truncatedPairs: number;
    seconds: number;
    pairsPerSecond: number;
    evaluatedTokens: number;
    /** null when queries were scored in groups (on a queue), where no query has a latency of its own. */
    queryLatencyMs: { p50: number; p95: number; max: number } | null;
  };
}

/**
 * Measures need judged relevant documents: a set with none would print a table of zeros that
 * reads like a result. Said before the model loads.
 */
function refuseUnlabelled(set: EvalSet, relevanceLevel: number): void {
  for (const judged of set.qrels.values()) for (const relevance of judged.values()) if (relevance >= relevanceLevel) return;
  throw new ValidationError(
    `${set.source} has no document judged relevant (relevance >= ${relevanceLevel}, --relevance-level): eval's measures need labels. To rerank unlabelled data, use \`qwen-rerank score --input FILE.jsonl\``,
  );
}

/** Reranks the first stage's candidates and measures both runs. */
async function evaluateReranking(flags: EvalFlags, measures: Measure[], set: EvalSet, stack: ScoringStack): Promise<RerankingOutcome> {
  const stored = storedPipeline(stack, flags.model ?? "", flags.cache);
  const scores = await scoreWithProgress(stored, set, {}, "reranking");
  const k = scores.knobs;
  const run = rerankedRun(set, scores.logits, k);
  const options = { relevanceLevel: flags.relevanceLevel };
  const before = evaluateRun(set.qrels, set.firstStage, measures, options);
  const after = evaluateRun(set.qrels, run, measures, options);
  return {
    source: set.source,
    model: { name: stack.engine.info.model, flavor: stack.engine.info.flavor },
    measures,
    knobs: k,
    run,
    before,
    after,
    comparison: compareReports(before, after, measures),
    labelled: labelledScores(set, scores.logits, flags.relevanceLevel),
    calibration: { temperature: k.temperature, bias: k.bias },
    scoring: {
      pairs: scores.pairs,
      cachedPairs: scores.cachedPairs,
      scoredPairs: scores.scoredPairs,
      truncatedPairs: scores.truncatedPairs,
      seconds: scores.seconds,
      pairsPerSecond: scores.seconds > 0 ? scores.scoredPairs / scores.seconds : 0,
      evaluatedTokens: scores.evaluatedTokens,
      queryLatencyMs: scores.queryMs.length === 0 ? null : { p50: percentile(scores.queryMs, 50), p95: percentile(scores.queryMs, 95), max: percentile(scores.queryMs, 100) },
    },
  };
}

function rerankingJson(o: RerankingOutcome, flags: EvalFlags, output: string | undefined): object {
  const k = o.knobs;
  const out: Record<string, unknown> = {
    dataset: o.source,
    queries: o.after.queries,
    model: o.model.name,
    knobs: { instruction: k.instruction, maxLength: k.maxLength, temperature: k.temperature, bias: k.bias, topP: k.topP ?? null, threshold: k.threshold ?? null },
    measures: o.comparison,
    scoring: o.scoring,
    logLoss: logLoss(o.labelled.logits, o.labelled.labels, o.calibration),
    ece: expectedCalibrationError(o.labelled.logits, o.labelled.labels, o.calibration),
    run: output ?? null,
  };
  if (flags.perQuery) out.perQuery = { firstStage: Object.fromEntries(o.before.perQuery), reranked: Object.fromEntries(o.after.perQuery) };
  return out;
}

function rerankingText(o: RerankingOutcome, flags: EvalFlags, output: string | undefined): string {
  const { measures, comparison, before, after, scoring } = o;
  let text = `dataset: ${o.source}: ${after.queries} queries, ${scoring.pairs} pairs\n`;
  text += `model: ${o.model.name} (${o.model.flavor}); max_length ${o.knobs.maxLength}; instruction: ${o.knobs.instruction}\n\n`;
  text += textTable(
    ["measure", "first stage", "reranked", "delta", "p (t-test)", "p (randomisation)"],
    measures.map((m) => {
      const c = comparison[m.name] as MeasureComparison;
      return [m.name, c.firstStage, c.reranked, `${c.delta >= 0 ? "+" : ""}${c.delta.toFixed(4)}`, c.pTTest, c.pRandomisation];
    }),
  );
  if (flags.perQuery) {
    text += "\nper query (first stage -> reranked):\n";
    for (const [qid, v] of after.perQuery) {
      text += `${qid}\t${measures.map((m) => `${m.name} ${(before.perQuery.get(qid)?.[m.name] ?? 0).toFixed(4)} -> ${(v[m.name] ?? 0).toFixed(4)}`).join("\t")}\n`;
    }
  }
  // With every pair from the cache there is no speed to report: a rate of 0 would read as a failure.
  const latency = scoring.queryLatencyMs ? `query latency p50 ${scoring.queryLatencyMs.p50.toFixed(0)} ms, p95 ${scoring.queryLatencyMs.p95.toFixed(0)} ms` : "queries scored in groups by the workers (no per-query latency)";
  const speed = scoring.scoredPairs === 0 ? "no model time" : `${scoring.pairsPerSecond.toFixed(2)} pairs/s; ${latency}`;
  text += `\nscoring: ${scoring.scoredPairs} pairs scored, ${scoring.cachedPairs} from the cache; ${speed}\n`;
  return `${text}${output ? `wrote reranked run ${output}` : "the reranked run was not written (--out FILE writes it in TREC format)"}\n`;
}

async function runReranking(flags: EvalFlags, cmd: Command): Promise<void> {
  refuseMeasureAsModel(flags.model);
  const measures = measuresFrom(flags);
  const extras = applyConfigOptions(cmd);
  const set = await loadSetFrom(flags);
  refuseUnlabelled(set, flags.relevanceLevel);
  const output = flags.output ?? flags.out;
  const outcome = await withModel("eval", flags, extras, (stack) => evaluateReranking(flags, measures, set, stack));
  if (output) await writeRun(output, outcome.run, "qwen-rerank");
  process.stdout.write(flags.json ? `${JSON.stringify(rerankingJson(outcome, flags, output), null, 2)}\n` : rerankingText(outcome, flags, output));
  await maybeWriteReport(flags.report, () => rerankReport(outcome));
}

function rerankReport(o: RerankingOutcome): Report {
  const { source, measures, before, after, comparison, labelled, calibration, scoring } = o;
  const primary = measures[0] as Measure;
  const sections: ReportSection[] = [
    {
      kind: "table",
      title: "First stage vs reranked",
      note: "Means over queries; p-values of the paired t-test and of the paired randomisation test (10,000 sign flips) over the same queries.",
      columns: ["measure", "first stage", "reranked", "delta", "p (t-test)", "p (randomisation)"],
      rows: measures.map((m) => {
        const c = comparison[m.name] as MeasureComparison;
        return [m.name, c.firstStage, c.reranked, c.delta, c.pTTest, c.pRandomisation];
      }),
    },
    {
      kind: "chart",
      title: "Measures before and after reranking",
      chart: barChart(
        measures.map((m) => m.name),
        [
          { label: "first stage", data: measures.map((m) => before.mean[m.name] ?? 0) },
          { label: "reranked", data: measures.map((m) => after.mean[m.name] ?? 0) },
        ],
        "mean",
      ),
    },
    {
      kind: "chart",
      title: `Per-query change of ${primary.name}`,
      chart: deltaChart(before, after, primary.name),
    },
    {
      kind: "chart",
      title: "Scores of relevant and non-relevant documents",
      note: `score = sigmoid(logit / ${calibration.temperature} + ${calibration.bias}); unjudged documents count as non-relevant.`,
      chart: scoreHistogram(labelled, calibration),
    },
    {
      kind: "chart",
      title: "Reliability diagram",
      note: "Fraction of relevant documents against the mean score, in ten equal-width score bins. `qwen-rerank calibrate` fits a temperature and bias that bring it to the diagonal.",
      chart: reliabilityChart([{ label: "current scores", bins: reliability(labelled.logits, labelled.labels, calibration) }]),
    },
    {
      kind: "table",
      title: "Scoring",
      columns: ["pairs scored", "from cache", "pairs/s", "query p50 ms", "query p95 ms"],
      rows: [[scoring.scoredPairs, scoring.cachedPairs, scoring.pairsPerSecond, scoring.queryLatencyMs?.p50 ?? "-", scoring.queryLatencyMs?.p95 ?? "-"]],
    },
  ];
  return { title: "qwen-rerank eval: reranking", subtitle: `${source}: ${after.queries} queries`, sections };
}

export function registerEval(program: Command): void {
  const cmd = program
    .command("eval")
    .description("evaluate a TREC run against qrels (no model), or rerank a data set and compare with its first stage")
    .option("--per-query", "also print each query's values")
    .option("--complete", "average over every judged query; queries missing from the run score 0 (trec_eval -c)")
    .option("-o, --out <file>", "write the reranked run there, in TREC format (default: not written)")
    .addOption(new Option("--output <file>", "the former name of --out").hideHelp());
  addDatasetFlags(cmd);
  addQueueFlags(addModelFlags(cmd, "eval"));
  cmd.action(async () => {
    const flags = cmd.opts<EvalFlags>();
    if (flags.model !== undefined || flags.dataset !== undefined || flags.config !== undefined) await runReranking(flags, cmd);
    else await evaluateExistingRun(flags);
  });
}
