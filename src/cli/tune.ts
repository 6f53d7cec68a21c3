import type { Command } from "commander";
import { ValidationError } from "../errors/errors.js";
import { labelledScores } from "../eval/apply.js";
import type { EvalSet } from "../eval/dataset.js";
import type { MetricReport } from "../eval/metrics.js";
import { evaluateRun } from "../eval/metrics.js";
import type { ProfileValues } from "../eval/profile.js";
import { writeProfile } from "../eval/profile.js";
import type { Report } from "../eval/report.js";
import { barChart, deltaChart, reliabilityChart, scoreHistogram } from "../eval/report.js";
import { reliability } from "../eval/calibration.js";
import type { MeasureComparison } from "../eval/significance.js";
import { compareReports } from "../eval/significance.js";
import type { TuneEntry, TuneSpace } from "../eval/tune.js";
import { evaluatePostHoc, leaderboard, readSpace, spaceSize } from "../eval/tune.js";
import type { SetScores } from "../eval/score-set.js";
import type { ScoringStack } from "../compose/stack.js";
import { PresetRegistry } from "../prompt/presets.js";
import { DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import { applyConfigOptions } from "./config-file.js";
import type { DatasetFlags } from "./eval-common.js";
import { addDatasetFlags, loadSetFrom, maybeWriteReport, scoreWithProgress, storedPipeline, textTable } from "./eval-common.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg, addQueueFlags } from "./flags.js";
import { withModel } from "./model.js";

interface TuneFlags extends DatasetFlags, ModelFlagValues {
  space: string;
  out: string;
  show: number;
}

const shorten = (s: string, width: number) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
const describe = (e: TuneEntry) => `${shorten(e.instruction.label, 40)} L${e.maxLength} T${e.temperature} p${e.topP} s${e.threshold}`;

/** What tune found: the leaderboard, the first stage, the best entry and its scores. */
interface TuneOutcome {
  source: string;
  space: TuneSpace;
  board: TuneEntry[];
  best: TuneEntry;
  firstStage: MetricReport;
  test: MeasureComparison;
  bestScores: SetScores | undefined;
  set: EvalSet;
  scoring: { cachedPairs: number; scoredPairs: number; configurations: number; scorings: number };
}

/** Scores each (instruction, max_length) once and applies temperature, top_p and threshold to the stored log-odds. */
async function tune(flags: TuneFlags, space: TuneSpace, set: EvalSet, stack: ScoringStack): Promise<TuneOutcome> {
  const stored = storedPipeline(stack, flags.model ?? "", flags.cache);
  const scorings = space.instructions.length * space.maxLengths.length;
  process.stderr.write(
    `qwen-rerank: tuning ${space.objective.name} over ${spaceSize(space)} configurations (${scorings} scorings of ${set.queries.length} queries; temperature, top_p and threshold reuse the log-odds)${stored.store.size > 0 ? `; ${stored.store.size} pairs already in ${stored.store.path}` : ""}\n`,
  );
  const entries: TuneEntry[] = [];
  const scoresOf = new Map<string, SetScores>();
  let cachedPairs = 0;
  let scoredPairs = 0;
  let k = 0;
  for (const instruction of space.instructions) {
    for (const maxLength of space.maxLengths) {
      k++;
      const scores = await scoreWithProgress(stored, set, { instruction: instruction.instruction, maxLength }, `scoring ${k}/${scorings}`);
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
  return {
    source: set.source,
    space,
    board,
    best,
    firstStage,
    test,
    bestScores: scoresOf.get(`${best.instruction.instruction}\0${best.maxLength}`),
    set,
    scoring: { cachedPairs, scoredPairs, configurations: board.length, scorings },
  };
}

function profileOf(o: TuneOutcome, flags: TuneFlags): ProfileValues {
  const { best } = o;
  return {
    model: flags.model,
    instruction: best.instruction.instruction,
    maxLength: best.maxLength,
    temperature: best.temperature,
    topP: best.topP < 1 ? best.topP : undefined,
    threshold: best.threshold > 0 ? best.threshold : undefined,
  };
}

const firstStageValue = (o: TuneOutcome) => o.firstStage.mean[o.space.objective.name] ?? 0;

/** Said when even the best configuration ranks worse than the first stage: reranking would hurt this data. */
function belowFirstStage(o: TuneOutcome): string | undefined {
  const first = firstStageValue(o);
  if (o.best.value >= first) return undefined;
  return `the best configuration's ${o.space.objective.name} (${o.best.value.toFixed(4)}) is below the first stage's (${first.toFixed(4)}): reranking with this model and these settings makes this data's ranking worse; check the model, the instructions and the labels before serving the profile`;
}

function asJson(o: TuneOutcome, flags: TuneFlags): object {
  const { best } = o;
  return {
    dataset: o.source,
    objective: o.space.objective.name,
    firstStage: o.firstStage.mean,
    best: { ...profileOf(o, flags), value: best.value, means: best.means, keptPerQuery: best.keptPerQuery, pTTest: o.test.pTTest, pRandomisation: o.test.pRandomisation },
    leaderboard: o.board.map((e) => ({ instruction: e.instruction.instruction, preset: e.instruction.preset ?? null, maxLength: e.maxLength, temperature: e.temperature, topP: e.topP, threshold: e.threshold, value: e.value, means: e.means, keptPerQuery: e.keptPerQuery })),
    scoring: o.scoring,
    profile: flags.out,
    belowFirstStage: belowFirstStage(o) !== undefined,
  };
}

function asText(o: TuneOutcome, flags: TuneFlags): string {
  const { board, best, space } = o;
  const objective = space.objective.name;
  const others = space.measures.slice(1);
  let text = textTable(
    ["rank", "instruction", "max_length", "T", "top_p", "threshold", objective, ...others.map((m) => m.name), "kept/query"],
    board.slice(0, flags.show).map((e, i) => [String(i + 1), shorten(e.instruction.label, 48), e.maxLength, String(e.temperature), String(e.topP), String(e.threshold), e.value, ...others.map((m) => e.means[m.name] ?? 0), e.keptPerQuery]),
  );
  if (board.length > flags.show) text += `(${board.length - flags.show} more; --show N or --json for all)\n`;
  text += `\nfirst stage ${objective} ${firstStageValue(o).toFixed(4)}; best ${best.value.toFixed(4)} (paired t-test p ${o.test.pTTest.toFixed(4)}, randomisation p ${o.test.pRandomisation.toFixed(4)})\n`;
  return `${text}pairs: ${o.scoring.scoredPairs} scored, ${o.scoring.cachedPairs} from the cache\nwrote profile ${flags.out}\n`;
}

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
  const outcome = await withModel("tune", flags, extras, (stack) => tune(flags, space, set, stack), { minMaxLength: Math.max(...space.maxLengths) });
  const worse = belowFirstStage(outcome);
  await writeProfile(flags.out, profileOf(outcome, flags), [
    `qwen-rerank tune: best of ${outcome.board.length} configurations by ${space.objective.name} = ${outcome.best.value.toFixed(4)}`,
    `(first stage ${firstStageValue(outcome).toFixed(4)}) on ${outcome.source}, ${outcome.best.report.queries} queries.`,
    ...(worse ? [`Warning: ${worse}`] : []),
    `Load it with: qwen-rerank serve --config ${flags.out}`,
  ]);
  if (worse) process.stderr.write(`qwen-rerank: warning: ${worse}\n`);
  process.stdout.write(flags.json ? `${JSON.stringify(asJson(outcome, flags), null, 2)}\n` : asText(outcome, flags));
  await maybeWriteReport(flags.report, () => asReport(outcome, flags));
}

function asReport(o: TuneOutcome, flags: TuneFlags): Report {
  const { board, best } = o;
  const objective = o.space.objective.name;
  const shown = board.slice(0, 40);
  const report: Report = {
    title: "qwen-rerank tune",
    subtitle: `${o.source}: ${best.report.queries} queries, ${board.length} configurations, optimising ${objective}`,
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
        note: `Best ${shown.length} of ${board.length}; the first stage scores ${firstStageValue(o).toFixed(4)}.`,
        chart: barChart(
          ["first stage", ...shown.map(describe)],
          [{ label: objective, data: [firstStageValue(o), ...shown.map((e) => e.value)] }],
          objective,
          true,
        ),
      },
      {
        kind: "chart",
        title: `Per-query change of ${objective}, best configuration vs first stage`,
        chart: deltaChart(o.firstStage, best.report, objective),
      },
    ],
  };
  if (o.bestScores) {
    const labelled = labelledScores(o.set, o.bestScores.logits, flags.relevanceLevel);
    const c = { temperature: best.temperature, bias: o.bestScores.knobs.bias };
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
  addQueueFlags(addModelFlags(cmd, "tune"));
  cmd.action(async () => {
    await run(cmd.opts<TuneFlags>(), cmd);
  });
}
