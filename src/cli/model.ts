import type { ModelCommand } from "../config/knobs.js";
import { ValidationError } from "../errors/errors.js";
import type { ScoringStack } from "../compose/stack.js";
import { openStack } from "../compose/stack.js";
import type { ConfigExtras } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { rerankerOptionsFrom } from "./flags.js";

/** What a command knows of its work before the model loads. */
interface KnownWork {
  /** The context must hold this many tokens (tune's longest max_length). */
  minMaxLength?: number;
  /** It scores a single document. */
  lonePair?: boolean;
}

/**
 * Loads the model a command's flags name (sized for the work it `known`s), runs `work` with it,
 * and frees it whatever happens: the one open/dispose of every model command.
 */
export async function withModel<T>(command: ModelCommand, flags: ModelFlagValues, extras: ConfigExtras, work: (stack: ScoringStack) => Promise<T>, known: KnownWork = {}): Promise<T> {
  if (!flags.model) throw new ValidationError("a model is required (--model or `model:` in --config)");
  const options = rerankerOptionsFrom(command, { ...flags, model: flags.model }, extras);
  if (known.minMaxLength !== undefined) options.maxLength = Math.max(known.minMaxLength, options.maxLength ?? 0);
  // Engines side by side score different pairs; one pair is faster on one engine with every thread (unless the user asked).
  if (known.lonePair) options.onnxEngines ??= 1;
  const stack = await openStack(options);
  try {
    return await work(stack);
  } finally {
    await stack.dispose();
  }
}
