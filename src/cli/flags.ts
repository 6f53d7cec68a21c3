import type { EngineKind } from "../engines/open-engine.js";
import { ENGINE_KINDS } from "../engines/open-engine.js";
import type { OnnxPrecision } from "../engines/onnx/precision.js";
import { ONNX_PRECISIONS } from "../engines/onnx/precision.js";
import { describeShape } from "../engines/llama/memory-ladder.js";
import type { Command } from "commander";
import bytes from "bytes";
import { InvalidArgumentError, Option } from "commander";
import type { DefaultKnobs, ModelCommand } from "../config/knobs.js";
import { KNOBS, knobsOfCommand } from "../config/knobs.js";
import type { KvCacheType } from "../engines/llama/options.js";
import { DEFAULT_MEMORY_RESERVE_BYTES } from "../engines/llama/options.js";
import { DEFAULT_PREFIX_CACHE_BYTES } from "../engines/head-cache.js";
import type { ConvertType } from "../hf/convert.js";
import { CONVERT_TYPES } from "../hf/convert.js";
import type { RerankerOptions } from "../compose/stack.js";
import type { ConfigExtras } from "./config-file.js";
import { collectModelArgument } from "./served-models.js";
import { parseRedisUrl } from "../scoring/redis-url.js";

export const intArg =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected a whole number >= ${min}` : `expected an integer from ${min} to ${max}`);
    return n;
  };

/** A number in (min, max) (bounds excluded). */
export const numberArg =
  (min: number, max: number) =>
  (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n <= min || n >= max) throw new InvalidArgumentError(`expected a number above ${min}${Number.isFinite(max) ? ` and below ${max}` : ""}`);
    return n;
  };

/** The engine options every model-backed command shares (names match the library options). */
export function addEngineFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option("--engine <kind>", "auto (onnx int8 on x86 CPUs with VNNI, llama.cpp on a GPU and elsewhere, or what `doctor --engines` measured here), llama (llama.cpp, CPU/GPU) or onnx (ONNX Runtime, CPU) (default: auto)").choices([...ENGINE_KINDS]))
    .addOption(new Option("--onnx-precision <mode>", "onnx engine matrix products: int8 (int8 weights per column, activations per token, outlier features in fp32; keys and values cached in 8 bits), block8 (8-bit blocks of 32) or fp32; implies --engine onnx (default: int8)").choices([...ONNX_PRECISIONS]))
    .option("--no-onnx-cache", "onnx engine: build its graphs in memory at every start instead of keeping them on disk (--models-dir or ~/.cache/qwen-rerank/onnx, about the model file's size)")
    .option("--onnx-packed-weights", "onnx engine: let ONNX Runtime keep a packed copy of the weights: faster scoring (without it, 17-30% longer on the 8B shape), twice the weights' memory, a slower start (default: on up to 2 GiB of weights, the 0.6B shape)")
    .option("--no-onnx-packed-weights", "onnx engine: keep the weights memory-mapped only (default above 2 GiB of weights: the 4B and 8B shapes)")
    .option("--onnx-int8-attention", "onnx engine, int8: compute the attention's QK^T as an int8 product over the 8-bit cache (default: on x86 CPUs with AVX-512 VNNI and no AMX, where it was measured faster)")
    .option("--no-onnx-int8-attention", "onnx engine, int8: compute QK^T in fp32 over the dequantized keys (default on other CPUs)")
    .option("--onnx-engines <n>", "onnx engine: this many engines of one thread each, in their own processes, scoring a call's pairs side by side: the same scores, more pairs a second where ONNX Runtime's threads do not scale, each engine's memory, one thread's time for a lone pair (default: for onnx int8, chosen by default or with --engine onnx, --threads engines for a model with packed weights (the 0.6B shape) when memory holds them, one for a lone --doc; else 1, one engine of --threads threads)", intArg(1, 256))
    .option("--threads <n>", "CPU threads (default: all math cores)", intArg(1, 1024))
    .option("--sequences <n>", "pairs evaluated in parallel (default: 1 on CPU, 8 on GPU; onnx: documents per run, 1; above 1 a pair's last bits depend on its batch)", intArg(1, 256))
    .option("--batch-size <n>", "tokens per llama.cpp batch, or per onnx run, padding included (onnx: a document's last piece of up to a quarter of it joins the run before) (default: 512)", intArg(1, 65536))
    .option("--flash-attention", "llama.cpp engine only (picks it under --engine auto): enable flash attention (default: on)")
    .option("--no-flash-attention", "llama.cpp engine only (picks it under --engine auto): disable flash attention (exact F32 numerics with --kv-cache-type f32)")
    .addOption(new Option("--kv-cache-type <type>", "llama.cpp engine only (picks it under --engine auto): KV cache element type (default: f16)").choices(["f32", "f16", "bf16", "q8_0", "q4_0"]))
    .addOption(new Option("--gpu <kind>", "auto, cpu, cuda, vulkan or metal (default: auto)").choices(["auto", "cpu", "cuda", "vulkan", "metal"]))
    .option("--gpu-layers <n>", "llama.cpp engine only (picks it under --engine auto): layers offloaded to the GPU: auto, max or a count (default: auto)")
    .option("--no-mmap", "llama.cpp engine only (picks it under --engine auto): read the model into memory instead of memory-mapping it")
    .option("--no-prefix-reuse", "evaluate every pair whole (for comparisons; slower)")
    .option("--prefix-cache-bytes <size>", `evaluated prompt heads (instruction + query) kept across calls, e.g. 512MB; 0 = off (default: ${sizeText(DEFAULT_PREFIX_CACHE_BYTES)})`, sizeAtLeast(0))
    .option("--memory-reserve-bytes <size>", `llama.cpp engine only (picks it under --engine auto): memory kept free beside the context, e.g. 1GB; a context leaving less backs off to a smaller one; 0 = no check (default: ${sizeText(DEFAULT_MEMORY_RESERVE_BYTES)})`, sizeAtLeast(0))
    .option("--models-dir <dir>", "cache directory for hf: models, checkpoint conversions, the onnx engine's graphs and the engine choice (default: ~/.cache/qwen-rerank and ~/.node-llama-cpp/models)")
    .addOption(new Option("--convert-type <type>", "with a Hugging Face checkpoint as --model: the GGUF type it is converted to, once (default: f16)").choices([...CONVERT_TYPES]))
    .option("--offline", "never download: hf: URIs must already be in the models directory")
    .addOption(new Option("--log-level <level>", "llama.cpp log level (default: error)").choices(["error", "warn", "info", "debug"]));
}

/** `--queue`: the commands that score many pairs can hand them to workers (docs/scale-out.md). */
export function addQueueFlags(cmd: Command): Command {
  return cmd
    .option("--queue <redis-url>", "score on `qwen-rerank worker` processes through this BullMQ/Redis queue (redis://HOST:PORT/DB); this process only coordinates", redisUrlArg)
    .option("--job-pairs <n>", "with --queue: most pairs per job", intArg(1, 100_000), 32)
    .option("--job-tokens <n>", "with --queue: most prompt tokens per job", intArg(1, 10_000_000), 16_384)
    .option("--queue-wait <seconds>", "with --queue: how long the run waits without Redis or without a live worker for its model before it fails", intArg(1, 86_400), 60);
}

/**
 * Every size flag: bytes, or a size such as 12GB, 512MB or 64kb (powers of 1024), from `min` bytes
 * up. One syntax for all of them (--models-memory, --max-body-bytes, --cache-bytes, ...).
 */
export const sizeAtLeast =
  (min: number) =>
  (value: string): number => {
    const n = /^\s*\d+(\.\d+)?\s*([kmgtp]?b)?\s*$/i.test(value) ? bytes.parse(value) : null;
    if (n === null || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`expected a size such as 12GB, 512MB or a number of bytes${min > 0 ? `, at least ${bytes.format(min)}` : ""}`);
    return Math.floor(n);
  };
/** A size of at least one byte (--models-memory). */
export const sizeArg = sizeAtLeast(1);
/** How a size default reads in --help ("256MB", not 268435456). */
export const sizeText = (n: number): string => bytes.format(n, { unitSeparator: "" }) ?? String(n);

/** A redis:// URL, checked when the flags are read. */
export const redisUrlArg = (value: string): string => {
  try {
    parseRedisUrl(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message.replace(/^\w+: /, ""));
  }
  return value;
};

export interface EngineFlagValues {
  engine?: EngineKind;
  onnxPrecision?: OnnxPrecision;
  onnxCache?: boolean;
  onnxPackedWeights?: boolean;
  onnxInt8Attention?: boolean;
  onnxEngines?: number;
  threads?: number;
  sequences?: number;
  batchSize?: number;
  flashAttention?: boolean;
  kvCacheType?: KvCacheType;
  gpu?: string;
  gpuLayers?: string;
  mmap?: boolean;
  prefixReuse?: boolean;
  prefixCacheBytes?: number;
  memoryReserveBytes?: number;
  modelsDir?: string;
  convertType?: ConvertType;
  offline?: boolean;
  logLevel?: RerankerOptions["logLevel"];
  queue?: string;
  jobPairs?: number;
  jobTokens?: number;
  queueWait?: number;
}

export function engineOptionsFrom(flags: EngineFlagValues): Omit<RerankerOptions, "model"> {
  let gpuLayers: RerankerOptions["gpuLayers"];
  if (flags.gpuLayers !== undefined) {
    if (flags.gpuLayers === "auto" || flags.gpuLayers === "max") gpuLayers = flags.gpuLayers;
    else gpuLayers = intArg(0, 10000)(flags.gpuLayers);
  }
  return {
    engine: flags.engine,
    onnxPrecision: flags.onnxPrecision,
    onnxCache: flags.onnxCache === false ? false : undefined,
    onnxPackedWeights: flags.onnxPackedWeights,
    onnxInt8Attention: flags.onnxInt8Attention,
    onnxEngines: flags.onnxEngines,
    threads: flags.threads,
    sequences: flags.sequences,
    batchSize: flags.batchSize,
    flashAttention: flags.flashAttention,
    kvCacheType: flags.kvCacheType,
    gpu: flags.gpu === undefined ? undefined : flags.gpu === "cpu" ? false : (flags.gpu as RerankerOptions["gpu"]),
    gpuLayers,
    mmap: flags.mmap,
    prefixReuse: flags.prefixReuse,
    prefixCacheBytes: flags.prefixCacheBytes,
    memoryReserveBytes: flags.memoryReserveBytes,
    modelsDirectory: flags.modelsDir,
    convertType: flags.convertType,
    allowDownload: flags.offline ? false : undefined,
    logLevel: flags.logLevel ?? "error",
    queue: flags.queue !== undefined ? { url: flags.queue, jobPairs: flags.jobPairs, jobTokens: flags.jobTokens, noWorkerTimeoutMs: flags.queueWait === undefined ? undefined : flags.queueWait * 1000 } : undefined,
  };
}

const knobOptions = (command: ModelCommand) =>
  knobsOfCommand(command).map(([name, spec]) => {
    const option = new Option(spec.flag, `${spec.help} (default: ${spec.default})`);
    option.argParser((value: string, previous: unknown) => {
      let raw: unknown = value;
      if (spec.cli === "number") raw = value.trim() === "" ? Number.NaN : Number(value);
      if (spec.cli === "language-map") {
        // Repeated CODE=INSTRUCTION flags collect into one map.
        const eq = value.indexOf("=");
        if (eq < 1) throw new InvalidArgumentError('expected CODE=INSTRUCTION, e.g. zh="Given a Chinese query, ..."');
        raw = { ...(previous as Record<string, string> | undefined), [value.slice(0, eq).trim()]: value.slice(eq + 1) };
      }
      // The knob's own schema validates, so the CLI refuses exactly what the library and server refuse.
      const result = spec.schema.safeParse(raw);
      if (!result.success) throw new InvalidArgumentError(result.error.issues[0]?.message ?? "invalid value");
      return result.data;
    });
    return { name, option };
  });

/** The knob flags of a model command, from the knob table (src/config/knobs.ts). */
export function addKnobFlags(cmd: Command, command: ModelCommand): Command {
  for (const { option } of knobOptions(command)) cmd.addOption(option);
  return cmd;
}

/** The knob values among a command's parsed flags, by knob name (--language-instruction fills languageInstructions). */
export function knobDefaultsFrom(command: ModelCommand, flags: object): DefaultKnobs {
  const values = flags as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const { name, option } of knobOptions(command)) {
    const value = values[option.attributeName()];
    if (value !== undefined && KNOBS[name].perReranker) out[name] = value;
  }
  return out;
}

/** The options of every command that loads a model: model, config file, knobs, engine. */
export function addModelFlags(cmd: Command, command: ModelCommand): Command {
  // serve takes several models: --model NAME=FILE, repeated.
  const model =
    command === "serve"
      ? new Option("-m, --model <[name=]file>", "a Qwen3-Reranker model: GGUF file, hf: URI, Hugging Face checkpoint folder or hub id; repeat as NAME=FILE to serve several (the request's `model` picks one)").argParser(collectModelArgument)
      : new Option("-m, --model <file>", "a Qwen3-Reranker model: GGUF file, hf: URI, Hugging Face checkpoint folder or hub id (here or in --config)");
  cmd
    .addOption(model)
    .option("-c, --config <file>", "YAML or JSON config: options in camelCase, presets, languageInstructions, profiles (tune and calibrate write one)")
    .option("--profile <name>", "apply the named profile of the config file (its values win over the file's top level)");
  return addEngineFlags(addKnobFlags(cmd, command));
}

/** The model, knob and engine flags, as parsed (attribute names; --language-instruction is `languageInstruction`). */
export interface ModelFlagValues extends EngineFlagValues, Omit<DefaultKnobs, "languageInstructions"> {
  model?: string;
  languageInstruction?: Record<string, string>;
}

/**
 * Reranker options from a command's flags and its config file's extras (custom presets, language
 * map; a language given on the command line wins over the file's). Warnings go to stderr.
 */
export function rerankerOptionsFrom(command: ModelCommand, flags: ModelFlagValues & { model: string }, extras: ConfigExtras): RerankerOptions {
  const knobs = knobDefaultsFrom(command, flags);
  return {
    ...knobs,
    model: flags.model,
    presets: extras.presets,
    languageInstructions: { ...extras.languageInstructions, ...knobs.languageInstructions },
    onWarning: (message) => process.stderr.write(`qwen-rerank: warning: ${message}\n`),
    // The engine chosen for the user is said; one they named is not repeated back.
    onEngineSelected: (s) => {
      if (s.source !== "asked") process.stderr.write(`qwen-rerank: engine ${s.reason}\n`);
    },
    onMemoryBackoff: (e) =>
      process.stderr.write(`qwen-rerank: warning: out of memory for ${describeShape(e.from)} (${e.trigger}: ${e.reason}); continuing with ${describeShape(e.to)}\n`),
    ...engineOptionsFrom(flags),
  };
}
