import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import type { RerankerOptions } from "../reranker.js";
import type { ConfigExtras } from "./config-file.js";
import type { KvCacheType } from "../engines/llama/options.js";

export const intArg =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };

export const positiveNumberArg = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a number > 0");
  return n;
};

export const finiteNumberArg = (value: string): number => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("expected a number");
  return n;
};

/** A number in [0, 1] (or (0, 1] when zero is not allowed). */
export const unitArg =
  (allowZero: boolean) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n > 1 || n < 0 || (!allowZero && n === 0)) throw new InvalidArgumentError(allowZero ? "expected a number in [0, 1]" : "expected a number in (0, 1]");
    return n;
  };

/** The engine options every model-backed command shares (names match the library options). */
export function addEngineFlags(cmd: Command): Command {
  return cmd
    .option("--threads <n>", "CPU threads (default: all math cores)", intArg(1, 1024))
    .option("--sequences <n>", "pairs evaluated in parallel (default: 1 on CPU, 8 on GPU)", intArg(1, 256))
    .option("--batch-size <n>", "tokens per llama.cpp batch (default: 512)", intArg(1, 65536))
    .option("--flash-attention", "enable flash attention (default: on)")
    .option("--no-flash-attention", "disable flash attention (exact F32 numerics with --kv-cache-type f32)")
    .addOption(new Option("--kv-cache-type <type>", "KV cache element type (default: f16)").choices(["f32", "f16", "bf16", "q8_0", "q4_0"]))
    .addOption(new Option("--gpu <kind>", "auto, cpu, cuda, vulkan or metal (default: auto)").choices(["auto", "cpu", "cuda", "vulkan", "metal"]))
    .option("--gpu-layers <n>", "layers offloaded to the GPU: auto, max or a count (default: auto)")
    .option("--no-mmap", "read the model into memory instead of memory-mapping it")
    .option("--no-prefix-reuse", "evaluate every pair whole (for comparisons; slower)")
    .option("--models-dir <dir>", "cache directory for hf: models")
    .option("--offline", "never download: hf: URIs must already be in the models directory")
    .addOption(new Option("--log-level <level>", "llama.cpp log level (default: error)").choices(["error", "warn", "info", "debug"]));
}

export interface EngineFlagValues {
  threads?: number;
  sequences?: number;
  batchSize?: number;
  flashAttention?: boolean;
  kvCacheType?: KvCacheType;
  gpu?: string;
  gpuLayers?: string;
  mmap?: boolean;
  prefixReuse?: boolean;
  modelsDir?: string;
  offline?: boolean;
  logLevel?: RerankerOptions["logLevel"];
}

export function engineOptionsFrom(flags: EngineFlagValues): Omit<RerankerOptions, "model"> {
  let gpuLayers: RerankerOptions["gpuLayers"];
  if (flags.gpuLayers !== undefined) {
    if (flags.gpuLayers === "auto" || flags.gpuLayers === "max") gpuLayers = flags.gpuLayers;
    else gpuLayers = intArg(0, 10000)(flags.gpuLayers);
  }
  return {
    threads: flags.threads,
    sequences: flags.sequences,
    batchSize: flags.batchSize,
    flashAttention: flags.flashAttention,
    kvCacheType: flags.kvCacheType,
    gpu: flags.gpu === undefined ? undefined : flags.gpu === "cpu" ? false : (flags.gpu as RerankerOptions["gpu"]),
    gpuLayers,
    mmap: flags.mmap,
    prefixReuse: flags.prefixReuse,
    modelsDirectory: flags.modelsDir,
    allowDownload: flags.offline ? false : undefined,
    logLevel: flags.logLevel ?? "error",
  };
}

/** Collects repeated `code=instruction` values into a language -> instruction map. */
export const languageInstructionArg = (value: string, previous: Record<string, string> = {}): Record<string, string> => {
  const m = /^([a-z]{2,3})=(.+)$/s.exec(value.trim());
  if (!m?.[1] || !m[2]) throw new InvalidArgumentError('expected CODE=INSTRUCTION, e.g. zh="Given a Chinese query, ..."');
  return { ...previous, [m[1]]: m[2].trim() };
};

/** A language for routing: "auto" or an ISO 639-1 code. */
export const languageArg = (value: string): string => {
  if (!/^(auto|[a-z]{2,3})$/.test(value)) throw new InvalidArgumentError('expected "auto" or an ISO 639-1 code such as zh');
  return value;
};

/** The reranker knobs that score and serve share, as parsed flags. */
export interface RerankerFlagValues extends EngineFlagValues {
  model?: string;
  maxLength?: number;
  instruction?: string;
  temperature?: number;
  bias?: number;
  topP?: number;
  threshold?: number;
  preset?: string;
  languageInstruction?: Record<string, string>;
}

/**
 * Reranker options from a command's flags and its config file's extras (custom presets, language
 * map; a language given on the command line wins over the file's). Warnings go to stderr.
 */
export function rerankerOptionsFrom(flags: RerankerFlagValues & { model: string }, extras: ConfigExtras): RerankerOptions {
  return {
    model: flags.model,
    maxLength: flags.maxLength,
    instruction: flags.instruction,
    temperature: flags.temperature,
    bias: flags.bias,
    topP: flags.topP,
    threshold: flags.threshold,
    preset: flags.preset,
    presets: extras.presets,
    languageInstructions: { ...extras.languageInstructions, ...flags.languageInstruction },
    onWarning: (message) => process.stderr.write(`qwen-rerank: warning: ${message}\n`),
    ...engineOptionsFrom(flags),
  };
}
