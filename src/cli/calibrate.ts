import { createHash } from "node:crypto";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { ValidationError } from "../errors/errors.js";
import type { LabelledScores } from "../eval/apply.js";
import { labelledScores } from "../eval/apply.js";
import type { Calibration, CalibrationFit } from "../eval/calibration.js";
import { brier, expectedCalibrationError, fitCalibration, logLoss, MAX_TEMPERATURE, MIN_TEMPERATURE, reliability } from "../eval/calibration.js";
import type { EvalSet } from "../eval/dataset.js";
import type { ProfileValues } from "../eval/profile.js";
import { writeProfile } from "../eval/profile.js";
import type { Report } from "../eval/report.js";
import { reliabilityChart, scoreHistogram } from "../eval/report.js";
import type { ScoringStack } from "../compose/stack.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg, addQueueFlags } from "./flags.js";
import { withModel } from "./model.js";

interface CalibrateFlags extends DatasetFlags, ModelFlagValues {
  out: string;
  temperatureOnly?: boolean;
  bins: number;
  holdout: number;
  judgedOnly?: boolean;
}

const fractionArg = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError("expected a fraction in [0, 1)");
  return n;
};

/**
 * The held-out queries: round(fraction x queries) of them (at least one), those whose id hashes
 * lowest, so the split repeats across runs and holds out what was asked, not what a hash gave.
 */
function heldOutQueries(qids: readonly string[], fraction: number): Set<string> {
  if (fraction <= 0) return new Set();
  const count = Math.min(qids.length - 1, Math.max(1, Math.round(fraction * qids.length)));
  const rank = (qid: string) => createHash("sha1").update(qid).digest("hex");
  return new Set([...qids].sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0)).slice(0, Math.max(0, count)));
}

interface Figures {
  logLoss: number;
  ece: number;
  brier: number;
}

/** What calibrate found: the fit, and the figures before and after on the evaluated pairs. */
interface CalibrationOutcome {
  source: string;
  fitSet: LabelledScores;
  /** The held-out pairs, or the fitted ones when there is no holdout. */
  testSet: LabelledScores;
  positives: number;
  fit: CalibrationFit;
  /** What the reranker serves now: the official scores, T = 1 and no bias. */
  before: Calibration;
  after: Calibration;
  figures: { before: Figures; after: Figures };
  /** The instruction the scores were computed with. */
  instruction: string;
  warning: string | undefined;
  /** Queries of the set, and how many of them were held out. */
  queries: number;
  heldOutQueries: number;
}

/** Scores the set, fits the calibration on the fit queries and measures it on the held-out ones. */
async function calibrate(flags: CalibrateFlags, set: EvalSet, stack: ScoringStack): Promise<CalibrationOutcome> {
  const stored = storedPipeline(stack, flags.model ?? "", flags.cache);
  const scores = await scoreWithProgress(stored, set, {}, "scoring");
  const heldOut = heldOutQueries(set.queries.map((q) => q.qid), flags.holdout);
  const fitSet = labelledScores(set, scores.logits, flags.relevanceLevel, flags.judgedOnly, (q) => !heldOut.has(q));
  const testSet = flags.holdout > 0 ? labelledScores(set, scores.logits, flags.relevanceLevel, flags.judgedOnly, (q) => heldOut.has(q)) : fitSet;
  if (fitSet.logits.length === 0) throw new ValidationError("no labelled pair to fit on (lower --holdout, or check that the qrels judge the candidates)");
  if (testSet.logits.length === 0) throw new ValidationError("the holdout holds no pair: raise --holdout or use more queries");
  const positives = fitSet.labels.reduce((s, y) => s + y, 0);
  if (positives === 0 || positives === fitSet.labels.length) {
    throw new ValidationError(`every fitted pair is ${positives === 0 ? "non-relevant" : "relevant"}: calibration needs both kinds (check --relevance-level)`);
  }
  const fit = fitCalibration(fitSet.logits, fitSet.labels, !flags.temperatureOnly);
  const before: Calibration = { temperature: 1, bias: 0 };
  const after: Calibration = { temperature: fit.temperature, bias: fit.bias };
  const measure = (c: Calibration): Figures => ({
    logLoss: logLoss(testSet.logits, testSet.labels, c),
    ece: expectedCalibrationError(testSet.logits, testSet.labels, c, flags.bins),
    brier: brier(testSet.logits, testSet.labels, c),
  });
  const warning = fit.clamped
    ? `the best temperature lies outside [${MIN_TEMPERATURE}, ${MAX_TEMPERATURE}] and was clamped: ${fit.temperature >= MAX_TEMPERATURE ? "the scores barely track (or run against) the labels" : "the labels are almost perfectly separated"}`
    : undefined;
  return { source: set.source, fitSet, testSet, positives, fit, before, after, figures: { before: measure(before), after: measure(after) }, instruction: scores.knobs.instruction, warning, queries: set.queries.length, heldOutQueries: heldOut.size };
}

const evaluatedOn = (o: CalibrationOutcome, flags: CalibrateFlags) => (flags.holdout > 0 ? `${o.testSet.logits.length} held-out pairs` : "the same pairs");

function profileOf(o: CalibrationOutcome, flags: CalibrateFlags): ProfileValues {
  return {
    model: flags.model,
    instruction: flags.instruction !== undefined || flags.preset !== undefined ? o.instruction : undefined,
    maxLength: flags.maxLength,
    temperature: o.fit.temperature,
    bias: flags.temperatureOnly ? undefined : o.fit.bias,
  };
}

function asJson(o: CalibrationOutcome, flags: CalibrateFlags): object {
  return {
    dataset: o.source,
    pairs: { fit: o.fitSet.logits.length, evaluated: o.testSet.logits.length, relevant: o.positives },
    holdout: flags.holdout,
    queries: { fit: o.queries - o.heldOutQueries, heldOut: o.heldOutQueries },
    temperature: o.fit.temperature,
    bias: o.fit.bias,
    clamped: o.fit.clamped,
    before: o.figures.before,
    after: o.figures.after,
    profile: flags.out,
  };
}

const figureRows = (o: CalibrationOutcome): Array<Array<string | number>> => [
  ["before (T 1, bias 0)", o.figures.before.logLoss, o.figures.before.ece, o.figures.before.brier],
  ["after", o.figures.after.logLoss, o.figures.after.ece, o.figures.after.brier],
];

function asText(o: CalibrationOutcome, flags: CalibrateFlags): string {
  return (
    `fitted on ${o.fitSet.logits.length} pairs (${o.positives} relevant) of ${o.source}: temperature ${o.fit.temperature.toFixed(4)}, bias ${o.fit.bias.toFixed(4)}\n\n` +
    textTable([flags.holdout > 0 ? "held-out pairs" : "all pairs", "log-loss", "ECE", "Brier"], figureRows(o)) +
    `\nwrote profile ${flags.out}\n`
  );
}

function asReport(o: CalibrationOutcome, flags: CalibrateFlags): Report {
  return {
    title: "qwen-rerank calibrate",
    subtitle: `${o.source}: fitted on ${o.fitSet.logits.length} pairs, evaluated on ${evaluatedOn(o, flags)}`,
    sections: [
      {
        kind: "table",
        title: "Calibration",
        note: `score = sigmoid(logit / T + bias); fitted T = ${o.fit.temperature.toFixed(4)}, bias = ${o.fit.bias.toFixed(4)}.${o.warning ? ` Warning: ${o.warning}.` : ""}`,
        columns: ["", "log-loss", "ECE", "Brier"],
        rows: figureRows(o),
      },
      {
        kind: "chart",
        title: "Reliability diagram",
        chart: reliabilityChart([
          { label: "before", bins: reliability(o.testSet.logits, o.testSet.labels, o.before, flags.bins) },
          { label: "after", bins: reliability(o.testSet.logits, o.testSet.labels, o.after, flags.bins) },
        ]),
      },
      { kind: "chart", title: "Scores before calibration", chart: scoreHistogram(o.testSet, o.before) },
      { kind: "chart", title: "Scores after calibration", chart: scoreHistogram(o.testSet, o.after) },
    ],
  };
}

async function run(flags: CalibrateFlags, cmd: Command): Promise<void> {
  const extras = applyConfigOptions(cmd);
  const set = await loadSetFrom(flags);
  const outcome = await withModel("calibrate", flags, extras, (stack) => calibrate(flags, set, stack));
  const { before, after } = outcome.figures;
  // A temperature clamped at its top means the scores barely track the labels: a profile with it
  // would flatten every score to about 0.5. Not written, and the exit code says so.
  if (outcome.fit.clamped && outcome.fit.temperature >= MAX_TEMPERATURE) {
    process.stdout.write(flags.json ? `${JSON.stringify({ ...asJson(outcome, flags), profile: null }, null, 2)}\n` : asText(outcome, flags));
    process.stderr.write(`qwen-rerank: ${outcome.warning ?? "the fit was clamped"}; ${flags.out} was not written (a temperature of ${MAX_TEMPERATURE} would flatten every score): check the labels and --relevance-level, or the instruction\n`);
    process.exitCode = 1;
    return;
  }
  await writeProfile(flags.out, profileOf(outcome, flags), [
    `qwen-rerank calibrate: fitted on ${outcome.fitSet.logits.length} labelled pairs of ${outcome.source}.`,
    `log-loss ${before.logLoss.toFixed(4)} -> ${after.logLoss.toFixed(4)}, ECE ${before.ece.toFixed(4)} -> ${after.ece.toFixed(4)} on ${evaluatedOn(outcome, flags)}.`,
    `Load it with: qwen-rerank serve --config ${flags.out}`,
  ]);
  if (outcome.warning) process.stderr.write(`qwen-rerank: warning: ${outcome.warning}\n`);
  process.stdout.write(flags.json ? `${JSON.stringify(asJson(outcome, flags), null, 2)}\n` : asText(outcome, flags));
  await maybeWriteReport(flags.report, () => asReport(outcome, flags));
}

export function registerCalibrate(program: Command): void {
  const cmd = program
    .command("calibrate")
    .description("fit temperature (and bias) so that scores are probabilities of relevance; write them as a profile")
    .option("-o, --out <file>", "where the fitted values are written (a config file for serve/score/eval --config)", "calibrated.yaml")
    .option("--temperature-only", "fit the temperature alone, no bias (score = sigmoid(logit / T))")
    .option("--bins <n>", "reliability bins for ECE and the diagram", intArg(2, 100), 10)
    .option("--holdout <fraction>", "fit on the other queries and report on this fraction of them (split by query id)", fractionArg, 0)
    .option("--judged-only", "leave unjudged candidates out (by default they count as non-relevant, as in the metrics)");
  addDatasetFlags(cmd, false);
  addQueueFlags(addModelFlags(cmd, "calibrate"));
  cmd.action(async () => {
    await run(cmd.opts<CalibrateFlags>(), cmd);
  });
}
