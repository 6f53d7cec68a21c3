import { existsSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { ValidationError } from "../errors/errors.js";
import { labelledScores, rerankedRun } from "../eval/apply.js";
import { expectedCalibrationError, logLoss, reliability } from "../eval/calibration.js";
import type { Measure, MetricReport } from "../eval/metrics.js";
import { evaluateRun, formatTrecEval, parseMeasures } from "../eval/metrics.js";
import type { Report, ReportSection } from "../eval/report.js";
import { barChart, deltaChart, reliabilityChart, scoreHistogram } from "../eval/report.js";
import type { MeasureComparison } from "../eval/significance.js";
import { compareReports } from "../eval/significance.js";
import { readQrels, readRun, writeRun } from "../eval/trec.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, measuresFrom, percentile, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags } from "./flags.js";
import { withModel } from "./model.js";

interface EvalFlags extends DatasetFlags, ModelFlagValues {
  perQuery?: boolean;
  complete?: boolean;
  out: string;
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

/** eval with a model: rerank the first stage's candidates, compare, write the run. */
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

async function evaluateReranking(flags: EvalFlags, cmd: Command): Promise<void> {
  refuseMeasureAsModel(flags.model);
  const measures = measuresFrom(flags);
  const extras = applyConfigOptions(cmd);
  const set = await loadSetFrom(flags);
  const output = flags.output ?? flags.out;
  await withModel("eval", flags, extras, async (stack) => {
    const { pipeline, store } = storedPipeline(stack, flags.model ?? "", flags.cache);
    const scores = await scoreWithProgress(pipeline, store, set, {}, "reranking");
    const k = scores.knobs;
    const run = rerankedRun(set, scores.logits, k);
    await writeRun(output, run, "qwen-rerank");
    const options = { relevanceLevel: flags.relevanceLevel };
    const before = evaluateRun(set.qrels, set.firstStage, measures, options);
    const after = evaluateRun(set.qrels, run, measures, options);
    const comparison = compareReports(before, after, measures);
    const pairsPerSecond = scores.seconds > 0 ? scores.scoredPairs / scores.seconds : 0;
    const scoring = {
      pairs: scores.pairs,
      cachedPairs: scores.cachedPairs,
      scoredPairs: scores.scoredPairs,
      truncatedPairs: scores.truncatedPairs,
      seconds: scores.seconds,
      pairsPerSecond,
      evaluatedTokens: scores.evaluatedTokens,
      queryLatencyMs: { p50: percentile(scores.queryMs, 50), p95: percentile(scores.queryMs, 95), max: percentile(scores.queryMs, 100) },
    };
    const labelled = labelledScores(set, scores.logits, flags.relevanceLevel);
    const calibration = { temperature: k.temperature, bias: k.bias };
    const knobs = { instruction: k.instruction, maxLength: k.maxLength, temperature: k.temperature, bias: k.bias, topP: k.topP ?? null, threshold: k.threshold ?? null };
    if (flags.json) {
      const out: Record<string, unknown> = {
        dataset: set.source,
        queries: after.queries,
        model: stack.engine.info.model,
        knobs,
        measures: comparison,
        scoring,
        logLoss: logLoss(labelled.logits, labelled.labels, calibration),
        ece: expectedCalibrationError(labelled.logits, labelled.labels, calibration),
        run: output,
      };
      if (flags.perQuery) out.perQuery = { firstStage: Object.fromEntries(before.perQuery), reranked: Object.fromEntries(after.perQuery) };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      process.stdout.write(`dataset: ${set.source}: ${after.queries} queries, ${scores.pairs} pairs\n`);
      process.stdout.write(`model: ${stack.engine.info.model} (${stack.engine.info.flavor}); max_length ${k.maxLength}; instruction: ${k.instruction}\n\n`);
      process.stdout.write(
        textTable(
          ["measure", "first stage", "reranked", "delta", "p (t-test)", "p (randomisation)"],
          measures.map((m) => {
            const c = comparison[m.name] as MeasureComparison;
            return [m.name, c.firstStage, c.reranked, `${c.delta >= 0 ? "+" : ""}${c.delta.toFixed(4)}`, c.pTTest, c.pRandomisation];
          }),
        ),
      );
      if (flags.perQuery) {
        process.stdout.write("\nper query (first stage -> reranked):\n");
        for (const [qid, v] of after.perQuery) {
          process.stdout.write(`${qid}\t${measures.map((m) => `${m.name} ${(before.perQuery.get(qid)?.[m.name] ?? 0).toFixed(4)} -> ${(v[m.name] ?? 0).toFixed(4)}`).join("\t")}\n`);
        }
      }
      process.stdout.write(
        `\nscoring: ${scores.scoredPairs} pairs scored, ${scores.cachedPairs} from the cache; ${pairsPerSecond.toFixed(2)} pairs/s; query latency p50 ${scoring.queryLatencyMs.p50.toFixed(0)} ms, p95 ${scoring.queryLatencyMs.p95.toFixed(0)} ms\n`,
      );
      process.stdout.write(`wrote reranked run ${output}\n`);
    }
    await maybeWriteReport(flags.report, () => rerankReport(set.source, measures, before, after, comparison, labelled, calibration, scoring));
  });
}

function rerankReport(
  source: string,
  measures: readonly Measure[],
  before: MetricReport,
  after: MetricReport,
  comparison: Record<string, MeasureComparison>,
  labelled: ReturnType<typeof labelledScores>,
  calibration: { temperature: number; bias: number },
  scoring: { scoredPairs: number; cachedPairs: number; pairsPerSecond: number; queryLatencyMs: { p50: number; p95: number } },
): Report {
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
      rows: [[scoring.scoredPairs, scoring.cachedPairs, scoring.pairsPerSecond, scoring.queryLatencyMs.p50, scoring.queryLatencyMs.p95]],
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
    .option("-o, --out <file>", "where the reranked TREC run is written", "reranked.run")
    .addOption(new Option("--output <file>", "the former name of --out").hideHelp());
  addDatasetFlags(cmd);
  addModelFlags(cmd, "eval");
  cmd.action(async () => {
    const flags = cmd.opts<EvalFlags>();
    if (flags.model !== undefined || flags.dataset !== undefined || flags.config !== undefined) await evaluateReranking(flags, cmd);
    else await evaluateExistingRun(flags);
  });
}
