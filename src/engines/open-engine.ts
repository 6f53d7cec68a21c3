import { availableParallelism } from "node:os";
import type { Engine } from "./engine.js";
import type { EngineSelection } from "./engine.js";
import type { LlamaEngineOptions } from "./llama/options.js";
import type { OnnxPrecision } from "./onnx/precision.js";
import type { OnnxEngineOptions } from "./onnx/onnx-engine.js";
import { ValidationError } from "../errors/errors.js";

/** The in-process engines, and "auto": the fastest that keeps the scores on this machine (the default). */
export type EngineKind = "llama" | "onnx" | "auto";
export const ENGINE_KINDS: readonly EngineKind[] = ["llama", "onnx", "auto"];

/** Which engine scores, with the options only one of them has. */
export interface EngineChoice {
  /**
   * - "auto": the engine `doctor --engines` measured fastest within the agreement bars for this
   *   model file, CPU and thread count, when it ran here; else a rule (selectByRule in
   *   src/engines/engine-selection.ts): onnx int8 on x86 CPUs with VNNI, the llama.cpp engine on a
   *   GPU, without VNNI, or for a file or setting only llama.cpp handles. Nothing is timed at start.
   * - "llama": llama.cpp (CPU and GPU; a pair's bits never depend on its batch).
   * - "onnx": ONNX Runtime's CPU kernels (src/engines/onnx).
   *
   * Defaults to "auto".
   */
  engine?: EngineKind | undefined;
  /** The onnx engine's matrix products: "fp32", "block8" or "int8" (src/engines/onnx/graph.ts); naming one asks for the onnx engine. Default "int8". */
  onnxPrecision?: OnnxPrecision | undefined;
  /**
   * The onnx engine keeps the graphs it builds (quantized weights included) on disk under
   * `modelsDirectory`/onnx or ~/.cache/qwen-rerank/onnx, so that later starts load them
   * memory-mapped in seconds instead of building them; false builds them in memory at every start.
   * Default true.
   */
  onnxCache?: boolean | undefined;
  /**
   * The onnx engine lets ONNX Runtime keep a packed copy of the weight matrices: faster scoring,
   * for twice the weights' memory and a slower start (OnnxEngineOptions.packedWeights). Default:
   * packed when the matrices weigh at most 2 GiB (the 0.6B shape), else memory-mapped only (4B, 8B).
   */
  onnxPackedWeights?: boolean | undefined;
  /**
   * The onnx engine in int8 computes the attention's QK^T as an int8 product over its 8-bit cache
   * (OnnxEngineOptions.int8Attention). Default: on x86 CPUs with AVX-512 VNNI and no AMX, where it
   * was measured faster (int8AttentionPays in src/engines/cpu-features.ts); fp32 elsewhere.
   */
  onnxInt8Attention?: boolean | undefined;
  /**
   * The onnx engine as this many engines of one thread each, in their own processes, each scoring
   * whole pairs of a call side by side (src/engines/onnx/engine-pool.ts): the same bits, more pairs
   * a second where ONNX Runtime's threads do not scale (measured 1.85-2x with 2 on 2 cores,
   * docs/benchmarks.md), each engine's memory, and one thread's time for a lone pair. Default:
   * for onnx int8, whether `engine: "auto"` chose it or it was asked for, the layout rule (onnxLayout
   * in src/engines/engine-selection.ts: `threads` engines for a model with packed weights, the 0.6B
   * shape, when their memory fits); otherwise 1, one engine of `threads` threads.
   */
  onnxEngines?: number | undefined;
  /** Hears which engine was chosen and why (the CLI logs it). Default: none. */
  onEngineSelected?: ((selection: EngineSelection) => void) | undefined;
}

/**
 * What openEngine takes: the engine options, and where the engine's warnings go (an onnx cache that
 * could not be written or was damaged): the reranker's own `onWarning` (src/pipeline/pipeline.ts),
 * which openStack passes down. Default: a process warning.
 */
export type EngineOpenOptions = LlamaEngineOptions & EngineChoice & { onWarning?: ((message: string) => void) | undefined };

type Concrete = Omit<EngineOpenOptions, "engine" | "onEngineSelected"> & { engine: "llama" | "onnx" };

/** Opens the chosen engine; the onnx engine (and onnxruntime-node) is loaded only when it runs. `info.selection` says which and why. */
export async function openEngine(options: EngineOpenOptions): Promise<Engine> {
  const { engine: kind = "auto", onnxPrecision, onEngineSelected, ...rest } = options;
  const selection = await selectEngine(rest, kind, onnxPrecision, rest.onnxPackedWeights);
  onEngineSelected?.(selection);
  const engine = await openConcrete({ ...rest, engine: selection.engine, onnxPrecision: selection.onnxPrecision, onnxEngines: rest.onnxEngines ?? selection.onnxEngines });
  engine.selection = selection;
  return engine;
}

async function openConcrete(options: Concrete): Promise<Engine> {
  const { engine: kind, onnxPrecision, onnxCache, onnxPackedWeights, onnxInt8Attention, onnxEngines, onWarning, ...rest } = options;
  // Loaded here, not at the top: node-llama-cpp costs ~0.7 s of startup, which a command that fails validation need not pay.
  if (kind === "llama") return (await import("./llama/llama-engine.js")).LlamaEngine.open(rest);
  const { OnnxEngine } = await import("./onnx/onnx-engine.js");
  const onnxOptions: OnnxEngineOptions = {
    model: rest.model,
    modelsDirectory: rest.modelsDirectory,
    allowDownload: rest.allowDownload,
    convertType: rest.convertType,
    contextSize: rest.contextSize,
    sequences: rest.sequences,
    batchSize: rest.batchSize,
    threads: rest.threads,
    prefixReuse: rest.prefixReuse,
    prefixCacheBytes: rest.prefixCacheBytes,
    logLevel: rest.logLevel,
    precision: onnxPrecision,
    graphCache: onnxCache,
    packedWeights: onnxPackedWeights,
    int8Attention: onnxInt8Attention,
    onWarning,
  };
  if (onnxEngines !== undefined && onnxEngines !== 1) return (await import("./onnx/engine-pool.js")).OnnxEnginePool.open(onnxOptions, onnxEngines);
  return OnnxEngine.open(onnxOptions);
}

/**
 * The options only the llama.cpp engine has, named as in the library and a config file and then as
 * the CLI flag (the reason reaches all three), and whether a value asks for something (mmap on is
 * what the onnx engine does too): one sends `auto` to llama.cpp.
 */
const LLAMA_ONLY: ReadonlyArray<[string, (o: LlamaEngineOptions) => boolean]> = [
  ["kvCacheType (--kv-cache-type)", (o) => o.kvCacheType !== undefined],
  ["flashAttention (--[no-]flash-attention)", (o) => o.flashAttention !== undefined],
  ["gpuLayers (--gpu-layers)", (o) => o.gpuLayers !== undefined],
  ["mmap: false (--no-mmap)", (o) => o.mmap === false],
  ["rankHead", (o) => o.rankHead !== undefined && o.rankHead !== "auto"],
  ["memoryReserveBytes (--memory-reserve-bytes)", (o) => o.memoryReserveBytes !== undefined],
];

async function selectEngine(options: LlamaEngineOptions & Pick<EngineChoice, "onnxEngines">, kind: EngineKind, onnxPrecision: OnnxPrecision | undefined, onnxPackedWeights: boolean | undefined): Promise<EngineSelection> {
  const measuredAt = new Date().toISOString();
  if (kind === "llama") return { engine: "llama", reason: "llama: asked for (engine llama)", source: "asked", trials: [], key: "", measuredAt };
  if (kind === "onnx" || onnxPrecision !== undefined) {
    // Ignored, they would leave the user believing the scores follow them.
    const llamaOnly = LLAMA_ONLY.filter(([, given]) => given(options)).map(([name]) => name);
    if (llamaOnly.length > 0) {
      throw new ValidationError(
        `${llamaOnly.join(", ")} ${llamaOnly.length > 1 ? "are settings" : "is a setting"} of the llama.cpp engine only, and ${kind === "onnx" ? "engine onnx" : "an onnx precision"} asks for the onnx engine (its own cache of keys and values, no flash attention, weights memory-mapped): remove one or the other`,
      );
    }
    const precision = onnxPrecision ?? "int8";
    const asked: EngineSelection = { engine: "onnx", onnxPrecision: precision, reason: `onnx ${precision}: asked for (${kind === "onnx" ? "engine onnx" : "an onnx precision"})`, source: "asked", trials: [], key: "", measuredAt };
    // The engine the default picks, asked for by name, runs as the default runs it.
    if (precision !== "int8") return asked;
    const [{ resolveModelSource }, { onnxFit }, { memoryRoom }] = await Promise.all([import("./llama/model-source.js"), import("./onnx/onnx-fit.js"), import("./memory-room.js")]);
    let fit;
    try {
      fit = await onnxFit(await resolveModelSource(options.model, options), onnxPackedWeights);
    } catch {
      // A file the engine cannot read: its open says so in the user's words.
      return asked;
    }
    return withLayout(asked, options, fit, memoryRoom().bytes);
  }
  const [{ sharedLlama }, { resolveModelSource }, { ggufFingerprint }, cpu, selection, { onnxFit }, { memoryRoom }, { noGpuDevice }] = await Promise.all([
    import("./llama/runtime.js"),
    import("./llama/model-source.js"),
    import("../gguf/fingerprint.js"),
    import("./cpu-features.js"),
    import("./engine-selection.js"),
    import("./onnx/onnx-fit.js"),
    import("./memory-room.js"),
    import("./gpu-devices.js"),
  ]);
  const llamaOnlySettings = LLAMA_ONLY.filter(([, given]) => given(options)).map(([flag]) => flag);
  // The llama.cpp runtime loads natively (~0.6 s) while this thread reads the model file, whose
  // facts the rule needs unless a GPU or a llama-only setting decides first.
  const runtime = options.gpu === false ? undefined : sharedLlama(options.gpu, options.logLevel ?? "error");
  const fileFacts = (async () => {
    const path = await resolveModelSource(options.model, options);
    // The onnx engine reads the same header and fingerprint next (both kept for it): here they fill the runtime's load.
    try {
      return { fit: await onnxFit(path, onnxPackedWeights), fingerprint: ggufFingerprint(path) };
    } catch (error) {
      // Not a GGUF file: the llama.cpp engine's open says so in the user's words (a found file that is not a model).
      return { unreadable: (error as Error).message.split("\n")[0] ?? "" };
    }
  })();
  fileFacts.catch(() => undefined);
  // Where no GPU device exists the rule need not wait for that runtime to find none (~0.9 s of a
  // start); it goes on loading, for the vocabulary (the onnx engine's) or the llama.cpp engine.
  const gpu = !runtime || ((options.gpu ?? "auto") === "auto" && noGpuDevice()) ? false : (await runtime).gpu;
  let onnxRuntimeMissing: string | undefined;
  if (gpu === false && llamaOnlySettings.length === 0) {
    try {
      await import("onnxruntime-node");
    } catch (error) {
      onnxRuntimeMissing = (error as Error).message.split("\n")[0];
    }
  }
  const ruleFacts = { gpu, llamaOnlySettings, onnxRuntimeMissing, vnni: cpu.hasUnsignedDotProduct(), kernelFlags: cpu.kernelFlagsLine() };
  if (gpu !== false || llamaOnlySettings.length > 0 || onnxRuntimeMissing) return selection.selectByRule({ ...ruleFacts, unreadableTensor: undefined, int8Bytes: 0, memoryBytes: 0 }, measuredAt);
  const facts = await fileFacts;
  if ("unreadable" in facts) return { engine: "llama", reason: `llama: the model file cannot be read as GGUF (${facts.unreadable})`, source: "rule", trials: [], key: "", measuredAt };
  const { fit, fingerprint } = facts;
  const memoryBytes = memoryRoom().bytes;
  const chosen =
    selection.cachedSelection(selection.selectionCachePath(options.modelsDirectory), measurementKey(fingerprint, cpu.kernelFlagsLine(), options.threads)) ??
    selection.selectByRule({ ...ruleFacts, unreadableTensor: fit.unreadable, int8Bytes: fit.bytes("int8"), memoryBytes }, measuredAt);
  if (chosen.engine !== "onnx" || chosen.onnxPrecision !== "int8") return chosen;
  return withLayout(chosen, options, fit, memoryBytes);
}

/**
 * How many onnx int8 engines run side by side: the user's onnxEngines when given, else the layout
 * rule (onnxLayout; the calibration times one engine of each mode), said in the reason.
 */
async function withLayout(
  chosen: EngineSelection,
  options: Pick<EngineChoice, "onnxEngines"> & { threads?: number | undefined },
  fit: { packedInt8: boolean; bytes: (precision: OnnxPrecision) => number },
  memoryBytes: number,
): Promise<EngineSelection> {
  const threads = options.threads ?? availableParallelism();
  if (options.onnxEngines !== undefined) {
    const n = options.onnxEngines;
    const layout = n === 1 ? `one engine of ${threads} thread${threads === 1 ? "" : "s"}` : `${n} engines of one thread each`;
    // Said in the user's words: the flag, or the one case where the CLI asks for it (a lone --doc).
    return { ...chosen, reason: `${chosen.reason}; ${layout} (--onnx-engines ${n}, or \`score\` with one --doc)` };
  }
  const { onnxLayout } = await import("./engine-selection.js");
  const layout = onnxLayout({ threads, packedWeights: fit.packedInt8, int8Bytes: fit.bytes("int8"), memoryBytes });
  return { ...chosen, reason: `${chosen.reason}; ${layout.reason}`, ...(layout.engines > 1 ? { onnxEngines: layout.engines } : {}) };
}

/** What a measurement is kept under: the model's content, the CPU's kernel flags and the threads (each changes which engine is fastest). */
const measurementKey = (fingerprint: string, kernelFlags: string, threads: number | undefined): string => `${fingerprint} ${kernelFlags} threads=${threads ?? availableParallelism()}`;

/**
 * Times every engine and onnx mode that fits on this machine and model, and decides between them
 * (src/engines/engine-selection.ts); the choice is kept in engine-choice.json, where `engine: "auto"`
 * finds it from then on. What `doctor --engines` runs. `options.model` may be any model source.
 */
export async function calibrateEngines(options: Omit<EngineOpenOptions, "engine" | "onnxPrecision" | "onEngineSelected">): Promise<EngineSelection> {
  const [{ resolveModelSource }, { onnxFit }, selection, { ggufFingerprint }, { kernelFlagsLine }] = await Promise.all([
    import("./llama/model-source.js"),
    import("./onnx/onnx-fit.js"),
    import("./engine-selection.js"),
    import("../gguf/fingerprint.js"),
    import("./cpu-features.js"),
  ]);
  const path = await resolveModelSource(options.model, options);
  const key = measurementKey(ggufFingerprint(path), kernelFlagsLine(), options.threads);
  const chosen = await selection.calibrate({
    key,
    maxLength: 512,
    onnxBytes: (await onnxFit(path, options.onnxPackedWeights)).bytes,
    // The calibration engines: the user's settings, a small context, no cache to share.
    open: (c) => openConcrete({ ...options, model: path, ...c, contextSize: 512, onMemoryBackoff: undefined }),
  });
  selection.writeCache(selection.selectionCachePath(options.modelsDirectory), chosen);
  return chosen;
}
