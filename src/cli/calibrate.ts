import { createHash } from "node:crypto";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { ValidationError } from "../errors/errors.js";
import { labelledScores } from "../eval/apply.js";
import type { Calibration } from "../eval/calibration.js";
import { brier, expectedCalibrationError, fitCalibration, logLoss, MAX_TEMPERATURE, MIN_TEMPERATURE, reliability } from "../eval/calibration.js";
import { writeProfile } from "../eval/profile.js";
import type { Report } from "../eval/report.js";
import { reliabilityChart, scoreHistogram } from "../eval/report.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg } from "./flags.js";
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

/** A query's side of the holdout split: a hash of its id, so the split repeats across runs. */
const isHeldOut = (qid: string, fraction: number) => fraction > 0 && createHash("sha1").update(qid).digest().readUInt32BE(0) / 2 ** 32 < fraction;

async function run(flags: CalibrateFlags, cmd: Command): Promise<void> {
  const extras = applyConfigOptions(cmd);
  const set = await loadSetFrom(flags);
  await withModel("calibrate", flags, extras, async (stack) => {
    const { pipeline, store } = storedPipeline(stack, flags.model ?? "", flags.cache);
    const scores = await scoreWithProgress(pipeline, store, set, {}, "scoring");
    const fitSet = labelledScores(set, scores.logits, flags.relevanceLevel, flags.judgedOnly, (q) => !isHeldOut(q, flags.holdout));
    const testSet = flags.holdout > 0 ? labelledScores(set, scores.logits, flags.relevanceLevel, flags.judgedOnly, (q) => isHeldOut(q, flags.holdout)) : fitSet;
    if (fitSet.logits.length === 0) throw new ValidationError("no labelled pair to fit on (lower --holdout, or check that the qrels judge the candidates)");
    if (testSet.logits.length === 0) throw new ValidationError("the holdout holds no pair: raise --holdout or use more queries");
    const positives = fitSet.labels.reduce((s, y) => s + y, 0);
    if (positives === 0 || positives === fitSet.labels.length) {
      throw new ValidationError(`every fitted pair is ${positives === 0 ? "non-relevant" : "relevant"}: calibration needs both kinds (check --relevance-level)`);
    }
    const fit = fitCalibration(fitSet.logits, fitSet.labels, !flags.temperatureOnly);
    // "Before" is what the reranker serves now: the official scores, T = 1 and no bias.
    const before: Calibration = { temperature: 1, bias: 0 };
    const after: Calibration = { temperature: fit.temperature, bias: fit.bias };
    const measure = (c: Calibration) => ({
      logLoss: logLoss(testSet.logits, testSet.labels, c),
      ece: expectedCalibrationError(testSet.logits, testSet.labels, c, flags.bins),
      brier: brier(testSet.logits, testSet.labels, c),
    });
    const m0 = measure(before);
    const m1 = measure(after);
    const knobs = scores.knobs;
    await writeProfile(
      flags.out,
      {
        model: flags.model,
        instruction: flags.instruction !== undefined || flags.preset !== undefined ? knobs.instruction : undefined,
        maxLength: flags.maxLength,
        temperature: fit.temperature,
        bias: flags.temperatureOnly ? undefined : fit.bias,
      },
      [
        `qwen-rerank calibrate: fitted on ${fitSet.logits.length} labelled pairs of ${set.source}.`,
        `log-loss ${m0.logLoss.toFixed(4)} -> ${m1.logLoss.toFixed(4)}, ECE ${m0.ece.toFixed(4)} -> ${m1.ece.toFixed(4)} on ${flags.holdout > 0 ? `${testSet.logits.length} held-out pairs` : "the same pairs"}.`,
        `Load it with: qwen-rerank serve --config ${flags.out}`,
      ],
    );
    const warning = fit.clamped
      ? `the best temperature lies outside [${MIN_TEMPERATURE}, ${MAX_TEMPERATURE}] and was clamped: ${fit.temperature >= MAX_TEMPERATURE ? "the scores barely track (or run against) the labels" : "the labels are almost perfectly separated"}`
      : undefined;
    if (warning) process.stderr.write(`qwen-rerank: warning: ${warning}\n`);
    if (flags.json) {
      const out = {
        dataset: set.source,
        pairs: { fit: fitSet.logits.length, evaluated: testSet.logits.length, relevant: positives },
        holdout: flags.holdout,
        temperature: fit.temperature,
        bias: fit.bias,
        clamped: fit.clamped,
        before: m0,
        after: m1,
        profile: flags.out,
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      process.stdout.write(`fitted on ${fitSet.logits.length} pairs (${positives} relevant) of ${set.source}: temperature ${fit.temperature.toFixed(4)}, bias ${fit.bias.toFixed(4)}\n\n`);
      process.stdout.write(
        textTable(
          [flags.holdout > 0 ? "held-out pairs" : "all pairs", "log-loss", "ECE", "Brier"],
          [
            ["before (T 1, bias 0)", m0.logLoss, m0.ece, m0.brier],
            ["after", m1.logLoss, m1.ece, m1.brier],
          ],
        ),
      );
      process.stdout.write(`\nwrote profile ${flags.out}\n`);
    }
    await maybeWriteReport(flags.report, (): Report => {
      return {
        title: "qwen-rerank calibrate",
        subtitle: `${set.source}: fitted on ${fitSet.logits.length} pairs, evaluated on ${flags.holdout > 0 ? `${testSet.logits.length} held-out pairs` : "the same pairs"}`,
        sections: [
          {
            kind: "table",
            title: "Calibration",
            note: `score = sigmoid(logit / T + bias); fitted T = ${fit.temperature.toFixed(4)}, bias = ${fit.bias.toFixed(4)}.${warning ? ` Warning: ${warning}.` : ""}`,
            columns: ["", "log-loss", "ECE", "Brier"],
            rows: [
              ["before (T 1, bias 0)", m0.logLoss, m0.ece, m0.brier],
              ["after", m1.logLoss, m1.ece, m1.brier],
            ],
          },
          {
            kind: "chart",
            title: "Reliability diagram",
            chart: reliabilityChart([
              { label: "before", bins: reliability(testSet.logits, testSet.labels, before, flags.bins) },
              { label: "after", bins: reliability(testSet.logits, testSet.labels, after, flags.bins) },
            ]),
          },
          { kind: "chart", title: "Scores before calibration", chart: scoreHistogram(testSet, before) },
          { kind: "chart", title: "Scores after calibration", chart: scoreHistogram(testSet, after) },
        ],
      };
    });
  });
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
  addModelFlags(cmd, "calibrate");
  cmd.action(async () => {
    await run(cmd.opts<CalibrateFlags>(), cmd);
  });
}
