import { existsSync } from "node:fs";
import { InvalidArgumentError } from "commander";
import { isUri } from "../engines/llama/model-source.js";
import { ValidationError } from "../errors/errors.js";

/** A name clients can send in `model` and that fits a URL query and a metrics label. */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;

/** One `--model` value: `NAME=PATH`, or a path (or hf: URI) alone. */
export interface ModelArgument {
  name: string | undefined;
  source: string;
}

/**
 * Reads one `--model` value. A value is a path when a file of that name exists or it is a URI;
 * otherwise `NAME=PATH` names it (the name may hold `/`, as Hugging Face ids do).
 */
export function parseModelArgument(value: string): ModelArgument {
  const eq = value.indexOf("=");
  if (eq < 0 || existsSync(value) || isUri(value)) return { name: undefined, source: value };
  const name = value.slice(0, eq).trim();
  const source = value.slice(eq + 1).trim();
  if (!MODEL_NAME.test(name)) throw new InvalidArgumentError(`"${name}" is not a model name: use letters, digits and . _ : / @ + - (NAME=PATH)`);
  if (source.length === 0) throw new InvalidArgumentError(`NAME=PATH: the path of "${name}" is empty`);
  return { name, source };
}

/** Repeatable `--model` (commander's argument parser): collects every value. */
export const collectModelArgument = (value: string, previous: ModelArgument[] | undefined): ModelArgument[] => [...(previous ?? []), parseModelArgument(value)];

/**
 * The models `serve` serves. `--model` values win over the config file's `models:` map (name ->
 * path). One unnamed model keeps the single-model behaviour (`--model-name` names it); with
 * several, each needs a name: `NAME=PATH`, or its file name when none is given.
 */
export function servedModels(args: readonly ModelArgument[], configModels: Readonly<Record<string, string>> | undefined, modelName: string | undefined): { single: string } | { several: Record<string, string> } {
  const list: ModelArgument[] = args.length > 0 ? [...args] : Object.entries(configModels ?? {}).map(([name, source]) => ({ name, source }));
  if (list.length === 0) throw new ValidationError("a model is required (--model, QWEN_RERANK_MODEL, or `model:` / `models:` in --config)");
  const [only] = list;
  if (list.length === 1 && only && only.name === undefined) return { single: only.source };
  if (modelName !== undefined) throw new ValidationError("--model-name names a single unnamed model; name each model with --model NAME=PATH");
  const several: Record<string, string> = {};
  for (const m of list) {
    const name = m.name ?? m.source.split(/[\\/]/).pop() ?? m.source;
    if (several[name] !== undefined) throw new ValidationError(`two models are named "${name}": name them with --model NAME=PATH`);
    several[name] = m.source;
  }
  return { several };
}
