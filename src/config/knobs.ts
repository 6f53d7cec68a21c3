import { z } from "zod";
import { MAX_SUPPORTED_LENGTH } from "../prompt/template.js";

/** The commands that load a model; each takes the knobs that list it. */
export type ModelCommand = "score" | "serve" | "eval" | "tune" | "calibrate" | "doctor";

const ALL: readonly ModelCommand[] = ["score", "serve", "eval", "tune", "calibrate", "doctor"];
// tune searches temperature, top_p and threshold itself and calibrate fits temperature and bias:
// a flag for them there would be overwritten, so those commands do not take it.
const SCORING: readonly ModelCommand[] = ["score", "serve", "eval", "doctor"];

interface KnobSpec<S extends z.ZodType> {
  schema: S;
  /** Field name in HTTP request bodies (snake_case); absent for knobs that are not per request. */
  wire?: string;
  /** CLI flag and argument, e.g. "--top-p <p>". */
  flag: string;
  /** What it does: CLI help and the docs table. */
  help: string;
  /** The default, as a user reads it. */
  default: string;
  /** A call (library call, HTTP request) may set it. */
  perCall: boolean;
  /** The reranker (createReranker, command-line flags, config files, profiles) may set its default. */
  perReranker: boolean;
  commands: readonly ModelCommand[];
  /** How the CLI turns the flag's text into a value before validation. */
  cli: "text" | "number" | "language-map";
}

// `const` keeps each row's literal types (wire names, flags), from which the wire schema is typed.
const knob = <const T extends KnobSpec<z.ZodType>>(spec: T): T => spec;

const LANGUAGE = /^(auto|[a-z]{2,3})$/;

/**
 * Every tuning knob, declared once: name (the library option and config key), HTTP field, bounds,
 * CLI flag, help and default. The library's call schema, the server's extension fields, the
 * CLI flags of every model command, the config/profile types and the table in docs/tuning.md are
 * derived from this table (docs/architecture.md, "Knobs"). Adding a knob = one row here plus its
 * implementation in the pipeline.
 */
export const KNOBS = {
  instruction: knob({
    schema: z.string().trim().min(1, "must not be empty").max(4096),
    wire: "instruction",
    flag: "--instruction <text>",
    help: "the <Instruct> text of the prompt",
    default: "the official web-search instruction",
    perCall: true,
    perReranker: true,
    commands: ALL,
    cli: "text",
  }),
  preset: knob({
    schema: z.string().min(1),
    wire: "preset",
    flag: "--preset <name>",
    help: "a scenario preset: its instruction and knobs apply unless given (see `qwen-rerank presets`)",
    default: "none",
    perCall: true,
    perReranker: true,
    commands: ALL,
    cli: "text",
  }),
  language: knob({
    schema: z.string().regex(LANGUAGE, 'must be "auto" or an ISO 639-1 code such as "zh"'),
    wire: "language",
    flag: "--language <code>",
    help: "route the instruction by the query's language: auto (detect), or a code such as zh",
    default: "off",
    perCall: true,
    perReranker: true,
    commands: ALL,
    cli: "text",
  }),
  languageInstructions: knob({
    schema: z.record(z.string(), z.string().trim().min(1, "must not be empty")).superRefine((map, ctx) => {
      for (const code of Object.keys(map)) if (!/^[a-z]{2,3}$/.test(code)) ctx.addIssue({ code: "custom", path: [code], message: "keys are ISO 639-1 codes such as zh" });
    }),
    flag: "--language-instruction <code=text>",
    help: "the instruction for one query language, used with language routing (repeat the flag)",
    default: "none",
    perCall: false,
    perReranker: true,
    commands: ALL,
    cli: "language-map",
  }),
  temperature: knob({
    schema: z.number({ error: "must be a number" }).finite("must be a finite number").positive("must be > 0").max(1000, "must be at most 1000"),
    wire: "temperature",
    flag: "--temperature <t>",
    help: "score = sigmoid(logit / t + bias): t < 1 sharpens, t > 1 flattens; never changes the order",
    default: "1 (official scores)",
    perCall: true,
    perReranker: true,
    commands: SCORING,
    cli: "number",
  }),
  bias: knob({
    schema: z.number({ error: "must be a number" }).finite("must be a finite number"),
    flag: "--bias <b>",
    help: "offset added to logit / t before the sigmoid, as fitted by `qwen-rerank calibrate`",
    default: "0",
    perCall: false,
    perReranker: true,
    commands: SCORING,
    cli: "number",
  }),
  topP: knob({
    schema: z.number({ error: "must be a number in (0, 1]" }).gt(0, "must be in (0, 1]").lte(1, "must be in (0, 1]"),
    wire: "top_p",
    flag: "--top-p <p>",
    help: "keep the best documents until their softmax(logit / t) weight reaches p (not sampling)",
    default: "1 (off)",
    perCall: true,
    perReranker: true,
    commands: SCORING,
    cli: "number",
  }),
  threshold: knob({
    schema: z.number({ error: "must be a number in [0, 1]" }).min(0, "must be in [0, 1]").max(1, "must be in [0, 1]"),
    wire: "threshold",
    flag: "--threshold <s>",
    help: "drop documents whose score is below s",
    default: "none",
    perCall: true,
    perReranker: true,
    commands: SCORING,
    cli: "number",
  }),
  topN: knob({
    // Any whole number: one above the number of documents (1e20 included) keeps them all.
    schema: z.number({ error: "must be a whole number >= 1" }).refine((n) => Number.isInteger(n) && n >= 1, "must be a whole number >= 1"),
    wire: "top_n",
    flag: "--top-n <n>",
    help: "keep only the n best documents",
    default: "all",
    perCall: true,
    perReranker: false,
    commands: ["score"],
    cli: "number",
  }),
  maxLength: knob({
    schema: z
      .number({ error: `must be a whole number of tokens up to ${MAX_SUPPORTED_LENGTH}` })
      .int(`must be a whole number of tokens up to ${MAX_SUPPORTED_LENGTH}`)
      .min(1, "must be >= 1")
      .max(MAX_SUPPORTED_LENGTH, `must be at most ${MAX_SUPPORTED_LENGTH} (the model's trained context)`),
    wire: "max_length",
    flag: "--max-length <n>",
    help: "max tokens of a pair (prompt included); only the query+document part is cut, from its end",
    default: "8192 (also the engine's context)",
    perCall: true,
    perReranker: true,
    commands: ALL,
    cli: "number",
  }),
  overflow: knob({
    schema: z.enum(["truncate", "chunk"], { error: 'must be "truncate" or "chunk"' }),
    wire: "overflow",
    flag: "--overflow <mode>",
    help: "an over-long document: truncate (official) or chunk (score overlapping windows, keep the best)",
    default: "truncate",
    perCall: true,
    perReranker: true,
    commands: ALL,
    cli: "text",
  }),
} as const;

export type KnobName = keyof typeof KNOBS;
/** Every knob with its value type. */
export type KnobValues = { [K in KnobName]: z.infer<(typeof KNOBS)[K]["schema"]> };

type Where<P extends "perCall" | "perReranker"> = { [K in KnobName]: (typeof KNOBS)[K][P] extends true ? K : never }[KnobName];
/** The knobs a call may set. */
export type CallKnobName = Where<"perCall">;
/** The knobs a reranker holds defaults for. */
export type DefaultKnobName = Where<"perReranker">;
export type CallKnobs = Partial<Pick<KnobValues, CallKnobName>>;
export type DefaultKnobs = Partial<Pick<KnobValues, DefaultKnobName>>;

const entries = Object.entries(KNOBS) as Array<[KnobName, KnobSpec<z.ZodType>]>;

function shapeOf(filter: (spec: KnobSpec<z.ZodType>) => boolean): Record<string, z.ZodOptional<z.ZodType>> {
  return Object.fromEntries(entries.filter(([, s]) => filter(s)).map(([name, s]) => [name, s.schema.optional()]));
}

/** Knobs of one library call, camelCase; `returnDocuments` is a response option, not a knob. */
export const callOptionsSchema = z.object({ ...shapeOf((s) => s.perCall), returnDocuments: z.boolean().optional() }).strict() as unknown as z.ZodType<
  CallKnobs & { returnDocuments?: boolean | undefined }
>;
export type CallOptions = CallKnobs & { returnDocuments?: boolean | undefined };

/** Defaults of a reranker (createReranker options, config files, profiles), camelCase. */
export const defaultKnobsSchema = z.object(shapeOf((s) => s.perReranker)) as unknown as z.ZodType<DefaultKnobs>;

// Official clients send null for fields they do not use (LangChain: max_chunks_per_doc: null):
// every optional wire field accepts null as absent.
export const nullable = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);

/**
 * Our extension fields, accepted by every HTTP dialect (snake_case). top_n is left to the
 * dialects: each declares it where its peers do.
 */
export const extensionFields = {
  ...Object.fromEntries(entries.filter(([name, s]) => s.wire !== undefined && s.perCall && name !== "topN").map(([, s]) => [s.wire as string, nullable(s.schema)])),
  /** Report the raw log-odds of each result. */
  return_logits: nullable(z.boolean()),
} as unknown as { [K in Exclude<CallKnobName, "topN"> as NonNullable<(typeof KNOBS)[K]["wire"]>]: z.ZodType<KnobValues[K] | undefined> } & {
  return_logits: z.ZodType<boolean | undefined>;
};

/** The call knobs of a parsed request body whose extension fields came from `extensionFields`. */
export function knobsFromWire(body: Record<string, unknown>): CallKnobs {
  const knobs: Record<string, unknown> = {};
  for (const [name, s] of entries) if (s.perCall && s.wire !== undefined && body[s.wire] !== undefined) knobs[name] = body[s.wire];
  return knobs;
}

/** Knob names and specs for one CLI command, in table order. */
export function knobsOfCommand(command: ModelCommand): Array<[KnobName, KnobSpec<z.ZodType>]> {
  return entries.filter(([, s]) => s.commands.includes(command));
}

/** The knob table of docs/tuning.md, generated from KNOBS (a test keeps the docs equal to it). */
export function knobTableMarkdown(): string {
  const rows = entries.map(([name, s]) => {
    const where = [s.perCall ? "call" : "", s.perReranker ? "reranker default" : ""].filter(Boolean).join(", ");
    const cmds = s.commands.length === ALL.length ? "all model commands" : s.commands.join(", ");
    return `| \`${name}\` | ${s.wire ? `\`${s.wire}\`` : "–"} | \`${s.flag}\` (${cmds}) | ${where} | ${s.help.replace(/\|/g, "\\|")} | ${s.default} |`;
  });
  return ["| knob | HTTP field | CLI flag | set per | what it does | default |", "|---|---|---|---|---|---|", ...rows].join("\n");
}

/** Separates the knob defaults (by the table) from the other fields of an options object. */
export function splitDefaultKnobs<T extends DefaultKnobs>(options: T): { knobs: DefaultKnobs; rest: Omit<T, DefaultKnobName> } {
  const knobs: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key in KNOBS && KNOBS[key as KnobName].perReranker) knobs[key] = value;
    else rest[key] = value;
  }
  return { knobs, rest: rest as Omit<T, DefaultKnobName> };
}

/** Fields that are not knobs, as the command line of `score` names them. */
const CLI_FIELDS: Record<string, string> = { query: "--query", documents: "--doc", instruction: "--instruction" };

/**
 * A library field ("maxLength", "topN.0", "query") as the command line names it ("--max-length"),
 * or undefined when it has no flag.
 */
export function flagOfField(field: string): string | undefined {
  const [head = field, index] = field.split(".");
  const spec = (KNOBS as Record<string, KnobSpec<z.ZodType> | undefined>)[head];
  if (spec) return /--[a-z-]+/.exec(spec.flag)?.[0];
  // documents.1 is the second --doc.
  const flag = CLI_FIELDS[head];
  return flag && index !== undefined && /^\d+$/.test(index) ? `${flag} #${Number(index) + 1}` : flag;
}

/** A library field as request bodies name it ("maxLength" -> "max_length"), or undefined when it is the same. */
export function wireOfField(field: string): string | undefined {
  const [head = field, ...rest] = field.split(".");
  const wire = (KNOBS as Record<string, KnobSpec<z.ZodType> | undefined>)[head]?.wire;
  return wire === undefined ? undefined : [wire, ...rest].join(".");
}
