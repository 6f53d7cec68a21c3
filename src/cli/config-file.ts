import type { Command, Option } from "commander";
import { z } from "zod";
import { KNOBS } from "../config/knobs.js";
import { ValidationError } from "../errors/errors.js";
import { readYamlFile } from "../files/yaml.js";
import type { Preset } from "../prompt/presets.js";
import { MODEL_NAME } from "./served-models.js";

const presetSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(""),
    instruction: KNOBS.instruction.schema,
    temperature: KNOBS.temperature.schema.optional(),
    topP: KNOBS.topP.schema.optional(),
    batchSize: z.number().int().min(1).optional(),
  })
  .strict();

/** What a config file adds besides option values. */
export interface ConfigExtras {
  /** Custom presets (`presets:` list). */
  presets?: Preset[] | undefined;
  /** Language -> instruction (`languageInstructions:` mapping). */
  languageInstructions?: Record<string, string> | undefined;
  /** Served name -> GGUF path, hf: URI, checkpoint folder or hub id (`models:` mapping; serve only). */
  models?: Record<string, string> | undefined;
}

// Keys of a config file that are not command options.
const SECTIONS = new Set(["presets", "languageInstructions", "profiles", "models"]);

const envName = (option: Option): string => `QWEN_RERANK_${option.attributeName().replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Turns a raw value (from the environment or a config file) into the option's value. */
function coerce(option: Option, raw: unknown): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    // The value is the attribute's: `mmap: false` means --no-mmap, whichever flag form matched.
    if (typeof raw === "boolean") return raw;
    const s = String(raw).toLowerCase();
    if (["1", "true", "yes", "on"].includes(s)) return true;
    if (["0", "false", "no", "off"].includes(s)) return false;
    throw new Error("expected true or false");
  }
  const values = Array.isArray(raw) ? raw.map(String) : [String(raw)];
  if (option.argChoices && values.some((v) => !option.argChoices?.includes(v))) throw new Error(`expected one of ${option.argChoices.join(", ")}`);
  if (option.parseArg) {
    const parse = option.parseArg as (v: string, prev: unknown) => unknown;
    return values.reduce<unknown>((prev, v) => parse(v, prev), undefined);
  }
  return Array.isArray(raw) ? values : values[0];
}

/**
 * Reads QWEN_RERANK_* environment variables for every option of a command (--max-documents ->
 * QWEN_RERANK_MAX_DOCUMENTS, booleans as true/false). Command-line values win.
 */
export function applyEnvironment(cmd: Command, env: NodeJS.ProcessEnv = process.env): void {
  for (const option of cmd.options as Option[]) {
    if (option.negate || option.hidden) continue;
    const name = envName(option);
    const raw = env[name];
    if (raw === undefined) continue;
    const key = option.attributeName();
    if (cmd.getOptionValueSource(key) === "cli") continue;
    try {
      cmd.setOptionValueWithSource(key, coerce(option, raw), "env");
    } catch (error) {
      throw new ValidationError(`${name}: ${(error as Error).message}`);
    }
  }
}

/**
 * Applies a YAML or JSON config file whose keys are the command's option names in camelCase
 * (e.g. `maxDocuments: 500`, `flashAttention: false`). The command line and the environment win.
 * Unknown keys and bad values are errors that name the file, the line and the key.
 */
export function applyConfigFile(cmd: Command, path: string, profile?: string): ConfigExtras {
  // One file can serve several commands (score and serve): options of a sibling command are skipped.
  const siblings = new Set((cmd.parent?.commands ?? []).flatMap((c) => (c.options as Option[]).map((o) => o.attributeName())));
  const { data, lineOf } = readYamlFile(path);
  if (data === null || data === undefined) {
    if (profile !== undefined) throw new ValidationError(`${path}: no profile "${profile}" (the file is empty)`);
    return {};
  }
  if (typeof data !== "object" || Array.isArray(data)) throw new ValidationError(`${path}: the config must be a mapping of option names to values`);
  const record = data as Record<string, unknown>;
  const options = cmd.options as Option[];
  const apply = (entries: Record<string, unknown>, where: (key: string) => string) => {
    for (const [key, raw] of Object.entries(entries)) {
      if (SECTIONS.has(key)) continue;
      // A boolean key may name either form of a negatable flag (mmap: false for --no-mmap).
      const option = options.find((o) => o.attributeName() === key && !o.negate) ?? options.find((o) => o.attributeName() === key);
      if (!option && siblings.has(key)) continue;
      if (!option || key === "config" || key === "profile") throw new ValidationError(`${where(key)}: unknown option "${key}"`);
      const source = cmd.getOptionValueSource(key);
      if (source === "cli" || source === "env" || source === "profile") continue;
      try {
        cmd.setOptionValueWithSource(key, coerce(option, raw), where === base ? "config" : "profile");
      } catch (error) {
        throw new ValidationError(`${where(key)}: ${key}: ${(error as Error).message}`);
      }
    }
  };
  const base = (key: string) => `${path}:${lineOf(key)}`;
  if (profile !== undefined) {
    const profiles = record.profiles;
    const chosen = profiles && typeof profiles === "object" ? (profiles as Record<string, unknown>)[profile] : undefined;
    if (!chosen || typeof chosen !== "object" || Array.isArray(chosen)) {
      const known = profiles && typeof profiles === "object" ? Object.keys(profiles).join(", ") : "none";
      throw new ValidationError(`${path}: no profile "${profile}" (profiles: ${known})`);
    }
    const start = Number(lineOf(profile, Number(lineOf("profiles")) || 0)) || 0;
    apply(chosen as Record<string, unknown>, (key) => `${path}:${lineOf(key, start)} (profile ${profile})`);
  }
  apply(record, base);

  const extras: ConfigExtras = {};
  if (record.presets !== undefined) {
    const parsed = z.array(presetSchema).safeParse(record.presets);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(`${path}:${lineOf("presets")}: presets.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
    }
    extras.presets = parsed.data;
  }
  if (record.languageInstructions !== undefined) {
    const where = `${path}:${lineOf("languageInstructions")}: languageInstructions`;
    const map = record.languageInstructions;
    if (!map || typeof map !== "object" || Array.isArray(map)) throw new ValidationError(`${where}: must be a mapping of language codes to instructions`);
    const parsed = KNOBS.languageInstructions.schema.safeParse(map);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(`${where}.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
    }
    extras.languageInstructions = parsed.data;
  }
  if (record.models !== undefined) {
    const where = `${path}:${lineOf("models")}: models`;
    const map = record.models;
    if (!map || typeof map !== "object" || Array.isArray(map)) throw new ValidationError(`${where}: must be a mapping of model names to GGUF paths`);
    for (const [name, source] of Object.entries(map)) {
      if (!MODEL_NAME.test(name)) throw new ValidationError(`${where}.${name}: a model name uses letters, digits and . _ : / @ + -`);
      if (typeof source !== "string" || source.length === 0) throw new ValidationError(`${where}.${name}: must be a GGUF path, an hf: URI, or a Hugging Face checkpoint folder or hub id`);
    }
    if (record.model !== undefined) throw new ValidationError(`${where}: give either model: or models:, not both`);
    extras.models = map as Record<string, string>;
  }
  return extras;
}

/** Applies the command's --config FILE (and --profile NAME) when given; returns the file's extras. */
export function applyConfigOptions(cmd: Command): ConfigExtras {
  const config = cmd.getOptionValue("config") as string | undefined;
  const profile = cmd.getOptionValue("profile") as string | undefined;
  if (profile !== undefined && !config) throw new ValidationError("--profile needs --config FILE");
  return config ? applyConfigFile(cmd, config, profile) : {};
}
