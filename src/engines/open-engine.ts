import type { Engine } from "./engine.js";
import type { LlamaEngineOptions } from "./llama/options.js";
import type { OnnxPrecision } from "./onnx/precision.js";

/** The in-process engines. */
export type EngineKind = "llama" | "onnx";
export const ENGINE_KINDS: readonly EngineKind[] = ["llama", "onnx"];

/** Which engine scores, with the options only one of them has. */
export interface EngineChoice {
  /**
   * "llama" (llama.cpp; CPU and GPU, the reference) or "onnx" (ONNX Runtime's CPU kernels, int8
   * matrix products; needs the optional onnxruntime-node package; docs/benchmarks.md). Default "llama".
   */
  engine?: EngineKind | undefined;
  /** The onnx engine's matrix products: "fp32", "block8" or "int8" (src/engines/onnx/graph.ts). Default "fp32". */
  onnxPrecision?: OnnxPrecision | undefined;
}

/** Opens the chosen engine; the onnx engine (and onnxruntime-node) is loaded only when asked for. */
export async function openEngine(options: LlamaEngineOptions & EngineChoice): Promise<Engine> {
  const { engine: kind = "llama", onnxPrecision, ...rest } = options;
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
    logLevel: rest.logLevel,
    precision: onnxPrecision,
  });
}
