import { readFileSync } from "node:fs";
import type { Command, Option } from "commander";
import { parseDocument } from "yaml";
import { ValidationError } from "../errors/errors.js";

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
export function applyConfigFile(cmd: Command, path: string): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ValidationError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  const doc = parseDocument(text);
  const parseError = doc.errors[0];
  if (parseError) throw new ValidationError(`${path}:${parseError.linePos?.[0]?.line ?? "?"}: ${parseError.message.split("\n")[0] ?? "invalid YAML/JSON"}`);
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return;
  if (typeof data !== "object" || Array.isArray(data)) throw new ValidationError(`${path}: the config must be a mapping of option names to values`);
  const lines = text.split("\n");
  const lineOf = (key: string): number | string => {
    const i = lines.findIndex((l) => new RegExp(`^\\s*["']?${key}["']?\\s*:`).test(l));
    return i >= 0 ? i + 1 : "?";
  };
  const options = cmd.options as Option[];
  for (const [key, raw] of Object.entries(data as Record<string, unknown>)) {
    // A boolean key may name either form of a negatable flag (mmap: false for --no-mmap).
    const option = options.find((o) => o.attributeName() === key && !o.negate) ?? options.find((o) => o.attributeName() === key);
    if (!option || key === "config") throw new ValidationError(`${path}:${lineOf(key)}: unknown option "${key}"`);
    const source = cmd.getOptionValueSource(key);
    if (source === "cli" || source === "env") continue;
    try {
      cmd.setOptionValueWithSource(key, coerce(option, raw), "config");
    } catch (error) {
      throw new ValidationError(`${path}:${lineOf(key)}: ${key}: ${(error as Error).message}`);
    }
  }
}
