import { z } from "zod";
import { KNOBS } from "../config/knobs.js";
import { ValidationError } from "../errors/errors.js";
import { readYamlFile } from "../files/yaml.js";
import type { PresetRegistry } from "../prompt/presets.js";
import type { PostHocKnobs } from "./apply.js";
import { rerankedRun } from "./apply.js";
import type { EvalSet } from "./dataset.js";
import type { Measure, MetricReport } from "./metrics.js";
import { evaluateRun, parseMeasures } from "./metrics.js";

// Each searched knob is a list of values, each value validated by the knob's own schema.
const spaceSchema = z
  .object({
    metric: z.string().min(1).default("ndcg_cut.10"),
    measures: z.array(z.string().min(1)).default([]),
    instructions: z.array(KNOBS.instruction.schema).default([]),
    presets: z.array(KNOBS.preset.schema).default([]),
    maxLength: z.array(KNOBS.maxLength.schema).min(1).optional(),
    temperature: z.array(KNOBS.temperature.schema).min(1).default([1]),
    topP: z.array(KNOBS.topP.schema).min(1).default([1]),
    threshold: z.array(KNOBS.threshold.schema).min(1).default([0]),
  })
  .strict();

/** An instruction candidate: its text and where it came from (for the leaderboard). */
export interface InstructionCandidate {
  label: string;
  instruction: string;
  /** The preset it came from, if any. */
  preset?: string | undefined;
}

/** A search space, parsed and resolved. */
export interface TuneSpace {
  objective: Measure;
  /** The objective first, then the other measures reported. */
  measures: Measure[];
  instructions: InstructionCandidate[];
  maxLengths: number[];
  temperatures: number[];
  topPs: number[];
  thresholds: number[];
}

/**
 * Reads a space file (YAML or JSON). Keys: metric, measures, instructions (text, "default" or
 * "preset:NAME"), presets, maxLength, temperature, topP, threshold; each knob is a list of values.
 * Errors name the file, line and key.
 */
export function readSpace(path: string, presets: PresetRegistry, defaults: { instruction: string; maxLength: number }): TuneSpace {
  const file = readYamlFile(path);
  const lineOf = (key: string) => file.lineOf(key);
  const parsed = spaceSchema.safeParse(file.data ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? "");
    const where = key ? `${path}:${lineOf(key)}: ${issue?.path.join(".")}` : path;
    const message = issue?.code === "unrecognized_keys" ? `unknown key(s) ${issue.keys.join(", ")} (known: ${Object.keys(spaceSchema.shape).join(", ")})` : (issue?.message ?? "invalid");
    throw new ValidationError(`${where}: ${message}`);
  }
  const s = parsed.data;
  const candidates: InstructionCandidate[] = [];
  const add = (c: InstructionCandidate) => {
    if (!candidates.some((o) => o.instruction === c.instruction)) candidates.push(c);
  };
  const fromPreset = (name: string) => {
    try {
      const p = presets.get(name);
      add({ label: `preset:${p.name}`, instruction: p.instruction, preset: p.name });
    } catch (error) {
      throw new ValidationError(`${path}:${lineOf("presets")}: ${(error as Error).message}`);
    }
  };
  for (const i of s.instructions) {
    if (i === "default") add({ label: "default", instruction: defaults.instruction });
    else if (i.startsWith("preset:")) fromPreset(i.slice("preset:".length));
    else add({ label: i, instruction: i });
  }
  for (const p of s.presets) fromPreset(p);
  if (candidates.length === 0) add({ label: "default", instruction: defaults.instruction });
  const wrap = (f: () => Measure[], key: string) => {
    try {
      return f();
    } catch (error) {
      throw new ValidationError(`${path}:${lineOf(key)}: ${(error as Error).message}`);
    }
  };
  const objective = wrap(() => parseMeasures([s.metric]), "metric");
  if (objective.length !== 1) throw new ValidationError(`${path}:${lineOf("metric")}: metric must be one measure with one cutoff, e.g. ndcg_cut.10`);
  const others = wrap(() => (s.measures.length > 0 ? parseMeasures(s.measures) : []), "measures");
  const unique = <T>(xs: T[]) => [...new Set(xs)];
  return {
    objective: objective[0] as Measure,
    measures: [objective[0] as Measure, ...others.filter((m) => m.name !== objective[0]?.name)],
    instructions: candidates,
    maxLengths: unique(s.maxLength ?? [defaults.maxLength]),
    temperatures: unique(s.temperature),
    topPs: unique(s.topP),
    thresholds: unique(s.threshold),
  };
}

/** Number of configurations a space holds. */
export function spaceSize(space: TuneSpace): number {
  return space.instructions.length * space.maxLengths.length * space.temperatures.length * space.topPs.length * space.thresholds.length;
}

export interface TuneEntry {
  instruction: InstructionCandidate;
  maxLength: number;
  temperature: number;
  topP: number;
  threshold: number;
  /** Objective value (mean over queries). */
  value: number;
  /** Every measure's mean. */
  means: Record<string, number>;
  /** Mean documents kept per query (after top_p and threshold). */
  keptPerQuery: number;
  report: MetricReport;
}

/**
 * Evaluates every post-hoc setting (temperature x top_p x threshold) of one scoring (instruction,
 * max_length) from its log-odds: no model call, so the grid costs only metric computations.
 */
export function evaluatePostHoc(space: TuneSpace, set: EvalSet, logits: ReadonlyMap<string, Float64Array>, scoring: { instruction: InstructionCandidate; maxLength: number; bias: number }, relevanceLevel: number): TuneEntry[] {
  const out: TuneEntry[] = [];
  for (const temperature of space.temperatures) {
    for (const topP of space.topPs) {
      for (const threshold of space.thresholds) {
        const knobs: PostHocKnobs = { temperature, bias: scoring.bias, topP: topP < 1 ? topP : undefined, threshold: threshold > 0 ? threshold : undefined };
        const run = rerankedRun(set, logits, knobs);
        const report = evaluateRun(set.qrels, run, space.measures, { relevanceLevel });
        let kept = 0;
        for (const qid of report.perQuery.keys()) kept += run.get(qid)?.length ?? 0;
        out.push({
          instruction: scoring.instruction,
          maxLength: scoring.maxLength,
          temperature,
          topP,
          threshold,
          value: report.mean[space.objective.name] ?? 0,
          means: report.mean,
          keptPerQuery: report.queries === 0 ? 0 : kept / report.queries,
          report,
        });
      }
    }
  }
  return out;
}

/**
 * Best first. Among equal values the cheaper or more neutral setting wins: shorter max_length
 * (faster), temperature nearer 1, no top_p, no threshold; then the order of the space.
 */
export function leaderboard(entries: readonly TuneEntry[]): TuneEntry[] {
  return entries
    .map((e, i) => ({ e, i }))
    .sort(
      (a, b) =>
        b.e.value - a.e.value ||
        a.e.maxLength - b.e.maxLength ||
        Math.abs(Math.log(a.e.temperature)) - Math.abs(Math.log(b.e.temperature)) ||
        b.e.topP - a.e.topP ||
        a.e.threshold - b.e.threshold ||
        a.i - b.i,
    )
    .map(({ e }) => e);
}
