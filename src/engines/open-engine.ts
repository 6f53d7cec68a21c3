import { availableParallelism } from "node:os";
import type { Engine } from "./engine.js";
import type { EngineSelection } from "./engine-selection.js";
import type { LlamaEngineOptions } from "./llama/options.js";
import type { OnnxPrecision } from "./onnx/precision.js";

/** The in-process engines, and "auto": the one a calibration on this machine and model picks. */
export type EngineKind = "llama" | "onnx" | "auto";
export const ENGINE_KINDS: readonly EngineKind[] = ["llama", "onnx", "auto"];

/** Which engine scores, with the options only one of them has. */
export interface EngineChoice {
  /**
   * "llama" (llama.cpp; CPU and GPU, the reference), "onnx" (ONNX Runtime's CPU kernels, int8
   * matrix products; needs the optional onnxruntime-node package; docs/benchmarks.md) or "auto":
   * llama.cpp on a GPU or without onnxruntime-node, else the fastest of llama.cpp and the onnx
   * modes that keeps the agreement bars on a short calibration (docs/benchmarks.md, "Choosing an
   * engine"), measured once per model file, CPU and thread count and cached. Default "llama".
   */
  engine?: EngineKind | undefined;
  /** The onnx engine's matrix products: "fp32", "block8" or "int8" (src/engines/onnx/graph.ts). Default "fp32". */
  onnxPrecision?: OnnxPrecision | undefined;
  /** Hears what `engine: "auto"` chose and why (the CLI logs it). Default: none. */
  onEngineSelected?: ((selection: EngineSelection) => void) | undefined;
}

type Concrete = LlamaEngineOptions & { engine: "llama" | "onnx"; onnxPrecision?: OnnxPrecision | undefined };

/** Opens the chosen engine; the onnx engine (and onnxruntime-node) is loaded only when asked for. */
export async function openEngine(options: LlamaEngineOptions & EngineChoice): Promise<Engine> {
  const { engine: kind = "llama", onnxPrecision, onEngineSelected, ...rest } = options;
  if (kind !== "auto") return openConcrete({ ...rest, engine: kind, onnxPrecision });
  const selection = await selectEngine(rest);
  onEngineSelected?.(selection);
  const engine = await openConcrete({ ...rest, engine: selection.engine, onnxPrecision: selection.onnxPrecision });
  engine.selection = selection;
  return engine;
}

async function openConcrete(options: Concrete): Promise<Engine> {
  const { engine: kind, onnxPrecision, ...rest } = options;
  // Loaded here, not at the top: node-llama-cpp costs ~0.7 s of startup, which a command that fails validation need not pay.
  if (kind === "llama") return (await import("./llama/llama-engine.js")).LlamaEngine.open(rest);
  const { OnnxEngine } = await import("./onnx/onnx-engine.js");
  return OnnxEngine.open({
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
  });
}

/**
 * What `engine: "auto"` runs: llama.cpp where a GPU is present (the onnx engine is CPU only) or
 * onnxruntime-node is missing; else a cached calibration of this model file on this CPU with
 * these threads, or a new one (each candidate loaded once, one at a time).
 */
async function selectEngine(options: LlamaEngineOptions): Promise<EngineSelection> {
  const measuredAt = new Date().toISOString();
  const [{ sharedLlama }, { resolveModelSource }, { ggufFingerprint }, { kernelFlagsLine }, selection] = await Promise.all([
    import("./llama/llama-engine.js"),
    import("./llama/model-source.js"),
    import("../gguf/fingerprint.js"),
    import("./cpu-features.js"),
    import("./engine-selection.js"),
  ]);
  const llama = await sharedLlama(options.gpu, options.logLevel ?? "warn");
  if (llama.gpu !== false) {
    return { engine: "llama", reason: `llama: a GPU is present (${llama.gpu}); the onnx engine runs on the CPU only`, source: "rule", trials: [], key: "", measuredAt };
  }
  try {
    await import("onnxruntime-node");
  } catch {
    return { engine: "llama", reason: "llama: onnxruntime-node is not installed (npm install onnxruntime-node@1.30.0 to let auto try the onnx engine)", source: "rule", trials: [], key: "", measuredAt };
  }
  const path = await resolveModelSource(options.model, options);
  const threads = options.threads ?? availableParallelism();
  const key = `${ggufFingerprint(path)} ${kernelFlagsLine()} threads=${threads}`;
  const cachePath = selection.selectionCachePath(options.modelsDirectory);
  const cached = selection.cachedSelection(cachePath, key);
  if (cached) return cached;
  const chosen = await calibrateEngines({ ...options, model: path }, key);
  selection.writeCache(cachePath, chosen);
  return chosen;
}

/**
 * Times every engine and onnx mode that fits on this machine and model, and decides between them
 * (src/engines/engine-selection.ts): what `engine: "auto"` caches and `doctor --engines` prints.
 * `options.model` may be any model source.
 */
export async function calibrateEngines(options: LlamaEngineOptions, key = ""): Promise<EngineSelection> {
  const [{ resolveModelSource }, { onnxMemoryOf }, { calibrate }] = await Promise.all([import("./llama/model-source.js"), import("./onnx/onnx-engine.js"), import("./engine-selection.js")]);
  const path = await resolveModelSource(options.model, options);
  return calibrate({
    key,
    maxLength: 512,
    onnxBytes: await onnxMemoryOf(path),
    // The calibration engines: the user's settings, a small context, no cache to share.
    open: (c) => openConcrete({ ...options, model: path, ...c, contextSize: 512, onMemoryBackoff: undefined }),
  });
}
