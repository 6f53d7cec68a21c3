import type { ModelCommand } from "../config/knobs.js";
import { ValidationError } from "../errors/errors.js";
import type { ScoringStack } from "../compose/stack.js";
import { openStack } from "../compose/stack.js";
import type { ConfigExtras } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { rerankerOptionsFrom } from "./flags.js";

/**
 * Loads the model a command's flags name (with a context of at least `minMaxLength` tokens), runs
 * `work` with it, and frees it whatever happens: the one open/dispose of every model command.
 */
export async function withModel<T>(command: ModelCommand, flags: ModelFlagValues, extras: ConfigExtras, work: (stack: ScoringStack) => Promise<T>, minMaxLength?: number): Promise<T> {
  if (!flags.model) throw new ValidationError("a model is required (--model or `model:` in --config)");
  const options = rerankerOptionsFrom(command, { ...flags, model: flags.model }, extras);
  if (minMaxLength !== undefined) options.maxLength = Math.max(minMaxLength, options.maxLength ?? 0);
  const stack = await openStack(options);
  try {
    return await work(stack);
  } finally {
    await stack.dispose();
  }
}
