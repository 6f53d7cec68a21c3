import type { Command } from "commander";
import { ValidationError } from "../errors/errors.js";
import { labelledScores } from "../eval/apply.js";
import { evaluateRun } from "../eval/metrics.js";
import { writeProfile } from "../eval/profile.js";
import type { Report } from "../eval/report.js";
import { barChart, deltaChart, reliabilityChart, scoreHistogram } from "../eval/report.js";
import { reliability } from "../eval/calibration.js";
import type { MeasureComparison } from "../eval/significance.js";
import { compareReports } from "../eval/significance.js";
import type { TuneEntry } from "../eval/tune.js";
import { evaluatePostHoc, leaderboard, readSpace, spaceSize } from "../eval/tune.js";
import type { SetScores } from "../eval/score-set.js";
import { PresetRegistry } from "../prompt/presets.js";
import { DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg } from "./flags.js";
import { withModel } from "./model.js";

interface TuneFlags extends DatasetFlags, ModelFlagValues {
  space: string;
  out: string;
  show: number;
}

const shorten = (s: string, width: number) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
const describe = (e: TuneEntry) => `${shorten(e.instruction.label, 40)} L${e.maxLength} T${e.temperature} p${e.topP} s${e.threshold}`;

async function run(flags: TuneFlags, cmd: Command): Promise<void> {
  const extras = applyConfigOptions(cmd);
  // The space is checked before the model loads, and sizes the engine's context.
  const presets = new PresetRegistry(extras.presets);
  const preset = flags.preset !== undefined ? presets.get(flags.preset) : undefined;
  const space = readSpace(flags.space, presets, {
    instruction: flags.instruction ?? preset?.instruction ?? DEFAULT_INSTRUCTION,
    maxLength: flags.maxLength ?? DEFAULT_MAX_LENGTH,
  });
  const set = await loadSetFrom(flags);
  await withModel("tune", flags, extras, async (stack) => {
    const { pipeline, store: cache } = storedPipeline(stack, flags.model ?? "", flags.cache);
    const scorings = space.instructions.length * space.maxLengths.length;
    process.stderr.write(
      `qwen-rerank: tuning ${space.objective.name} over ${spaceSize(space)} configurations (${scorings} scorings of ${set.queries.length} queries; temperature, top_p and threshold reuse the log-odds)${cache.size > 0 ? `; ${cache.size} pairs already in ${cache.path}` : ""}\n`,
    );
    const entries: TuneEntry[] = [];
    const scoresOf = new Map<string, SetScores>();
    let cachedPairs = 0;
    let scoredPairs = 0;
    let k = 0;
    for (const instruction of space.instructions) {
      for (const maxLength of space.maxLengths) {
        k++;
        const scores = await scoreWithProgress(pipeline, cache, set, { instruction: instruction.instruction, maxLength }, `scoring ${k}/${scorings}`);
        cachedPairs += scores.cachedPairs;
        scoredPairs += scores.scoredPairs;
        scoresOf.set(`${instruction.instruction}\0${maxLength}`, scores);
        entries.push(...evaluatePostHoc(space, set, scores.logits, { instruction, maxLength, bias: scores.knobs.bias }, flags.relevanceLevel));
      }
    }
    const board = leaderboard(entries);
    const best = board[0];
    if (!best) throw new ValidationError("the space is empty");
    const firstStage = evaluateRun(set.qrels, set.firstStage, space.measures, { relevanceLevel: flags.relevanceLevel });
    const test = compareReports(firstStage, best.report, [space.objective])[space.objective.name] as MeasureComparison;
    const profile = {
      model: flags.model,
      instruction: best.instruction.instruction,
      maxLength: best.maxLength,
      temperature: best.temperature,
      topP: best.topP < 1 ? best.topP : undefined,
      threshold: best.threshold > 0 ? best.threshold : undefined,
    };
    await writeProfile(flags.out, profile, [
      `qwen-rerank tune: best of ${board.length} configurations by ${space.objective.name} = ${best.value.toFixed(4)}`,
      `(first stage ${(firstStage.mean[space.objective.name] ?? 0).toFixed(4)}) on ${set.source}, ${best.report.queries} queries.`,
      `Load it with: qwen-rerank serve --config ${flags.out}`,
    ]);
    const summary = { cachedPairs, scoredPairs, configurations: board.length, scorings };
    if (flags.json) {
      const out = {
        dataset: set.source,
        objective: space.objective.name,
        firstStage: firstStage.mean,
        best: { ...profile, value: best.value, means: best.means, keptPerQuery: best.keptPerQuery, pTTest: test.pTTest, pRandomisation: test.pRandomisation },
        leaderboard: board.map((e) => ({ instruction: e.instruction.instruction, preset: e.instruction.preset ?? null, maxLength: e.maxLength, temperature: e.temperature, topP: e.topP, threshold: e.threshold, value: e.value, means: e.means, keptPerQuery: e.keptPerQuery })),
        scoring: summary,
        profile: flags.out,
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      const others = space.measures.slice(1);
      process.stdout.write(
        textTable(
          ["rank", "instruction", "max_length", "T", "top_p", "threshold", space.objective.name, ...others.map((m) => m.name), "kept/query"],
          board.slice(0, flags.show).map((e, i) => [String(i + 1), shorten(e.instruction.label, 48), e.maxLength, String(e.temperature), String(e.topP), String(e.threshold), e.value, ...others.map((m) => e.means[m.name] ?? 0), e.keptPerQuery]),
        ),
      );
      if (board.length > flags.show) process.stdout.write(`(${board.length - flags.show} more; --show N or --json for all)\n`);
      process.stdout.write(
        `\nfirst stage ${space.objective.name} ${(firstStage.mean[space.objective.name] ?? 0).toFixed(4)}; best ${best.value.toFixed(4)} (paired t-test p ${test.pTTest.toFixed(4)}, randomisation p ${test.pRandomisation.toFixed(4)})\n`,
      );
      process.stdout.write(`pairs: ${scoredPairs} scored, ${cachedPairs} from the cache\nwrote profile ${flags.out}\n`);
    }
    const bestScores = scoresOf.get(`${best.instruction.instruction}\0${best.maxLength}`);
    await maybeWriteReport(flags.report, () => tuneReport(set.source, board, firstStage.mean[space.objective.name] ?? 0, space.objective.name, best, bestScores, set, flags.relevanceLevel, firstStage));
  }, Math.max(...space.maxLengths));
}

function tuneReport(
  source: string,
  board: TuneEntry[],
  firstStageValue: number,
  objective: string,
  best: TuneEntry,
  bestScores: SetScores | undefined,
  set: Parameters<typeof labelledScores>[0],
  relevanceLevel: number,
  firstStage: ReturnType<typeof evaluateRun>,
): Report {
  const shown = board.slice(0, 40);
  const report: Report = {
    title: "qwen-rerank tune",
    subtitle: `${source}: ${best.report.queries} queries, ${board.length} configurations, optimising ${objective}`,
    sections: [
      {
        kind: "table",
        title: "Leaderboard",
        note: "T, top_p and threshold change which documents are kept, not their order: rank measures only move when documents are dropped.",
        columns: ["rank", "instruction", "max_length", "T", "top_p", "threshold", objective, "kept/query"],
        rows: shown.map((e, i) => [String(i + 1), e.instruction.label, e.maxLength, String(e.temperature), String(e.topP), String(e.threshold), e.value, e.keptPerQuery]),
      },
      {
        kind: "chart",
        title: `${objective} per configuration`,
        note: `Best ${shown.length} of ${board.length}; the first stage scores ${firstStageValue.toFixed(4)}.`,
        chart: barChart(
          ["first stage", ...shown.map(describe)],
          [{ label: objective, data: [firstStageValue, ...shown.map((e) => e.value)] }],
          objective,
          true,
        ),
      },
      {
        kind: "chart",
        title: `Per-query change of ${objective}, best configuration vs first stage`,
        chart: deltaChart(firstStage, best.report, objective),
      },
    ],
  };
  if (bestScores) {
    const labelled = labelledScores(set, bestScores.logits, relevanceLevel);
    const c = { temperature: best.temperature, bias: bestScores.knobs.bias };
    report.sections.push(
      { kind: "chart", title: "Scores of relevant and non-relevant documents (best configuration)", chart: scoreHistogram(labelled, c) },
      { kind: "chart", title: "Reliability diagram (best configuration)", chart: reliabilityChart([{ label: `T ${c.temperature}`, bins: reliability(labelled.logits, labelled.labels, c) }]) },
    );
  }
  return report;
}

export function registerTune(program: Command): void {
  const cmd = program
    .command("tune")
    .description("search instructions/presets, max_length, temperature, top_p and threshold on labelled data; write the best as a profile")
    .requiredOption("--space <file>", "YAML/JSON search space: metric, instructions, presets, maxLength, temperature, topP, threshold (lists)")
    .option("-o, --out <file>", "where the best configuration is written (a config file for serve/score/eval --config)", "tuned.yaml")
    .option("--show <n>", "leaderboard rows printed", intArg(1), 20);
  addDatasetFlags(cmd, false);
  addModelFlags(cmd, "tune");
  cmd.action(async () => {
    await run(cmd.opts<TuneFlags>(), cmd);
  });
}
