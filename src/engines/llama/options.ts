import type { ConvertType } from "../../hf/convert.js";
import type { ContextShape, MemoryBackoff } from "../engine.js";

/** Default of `memoryReserveBytes` (engine options). */
export const DEFAULT_MEMORY_RESERVE_BYTES = 256 * 1024 ** 2;

/** KV cache element types llama.cpp accepts for this model family. */
export type KvCacheType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0";

/** Options of the in-process llama.cpp engine. Every field has a working default. */
export interface LlamaEngineOptions {
  /**
   * A GGUF file path; an `hf:<user>/<repo>/<file>.gguf` URI resolved by node-llama-cpp (downloaded
   * once when online); or a Hugging Face checkpoint (safetensors): its folder, or an id such as
   * `Qwen/Qwen3-Reranker-8B` found in the local hub cache (HF_HUB_CACHE / HF_HOME; never
   * downloaded), converted to GGUF once and reused (README, "Models"). Required.
   */
  model: string;
  /**
   * Where `hf:` models are cached, and (in its `converted/` folder) checkpoint conversions.
   * Default: node-llama-cpp's models directory (~/.node-llama-cpp/models) for `hf:`, ~/.cache/qwen-rerank/converted for conversions.
   */
  modelsDirectory?: string | undefined;
  /** The GGUF weight type a Hugging Face checkpoint is converted to: "f16", "q8_0" (half the memory, faster on CPU) or "f32". Default "f16". */
  convertType?: ConvertType | undefined;
  /** Let `hf:` URIs download when no cached copy exists. Default true; false never touches the network. */
  allowDownload?: boolean | undefined;
  /** Longest pair (PREFIX+BODY+SUFFIX tokens) the engine holds per sequence. Default 8192, capped at the model's context. */
  contextSize?: number | undefined;
  /** Pairs evaluated in parallel, as sequences of one llama.cpp context. Default 1 on CPU, 8 on a GPU. Rank-head files use 1. (onnx engine: most documents per run, default 8.) */
  sequences?: number | undefined;
  /** Tokens per llama.cpp batch (prompt processing chunk). Default 512. (onnx engine: most tokens per run, padding included, default 512.) */
  batchSize?: number | undefined;
  /** CPU threads. Default: every math core llama.cpp detects. */
  threads?: number | undefined;
  /**
   * Flash attention. Default true: ~20% faster on CPU for the 0.6B shape. The CPU kernel rounds
   * through F16 (|dz| up to ~5e-3, |d score| ~1e-3); set false with kvCacheType "f32" for scores
   * within ~1e-5 of a float64 reference.
   */
  flashAttention?: boolean | undefined;
  /** KV cache element type. Default "f16"; "f32" makes scores match a float64 reference to ~1e-5. */
  kvCacheType?: KvCacheType | undefined;
  /** "auto" uses a GPU when one is present; false forces the CPU. Default "auto". */
  gpu?: "auto" | false | "cuda" | "vulkan" | "metal" | undefined;
  /** Layers offloaded to the GPU: "auto", "max" or a count. Default "auto". */
  gpuLayers?: "auto" | "max" | number | undefined;
  /** Memory-map the model file instead of reading it into RAM. Default true. */
  mmap?: boolean | undefined;
  /** Evaluate the shared token prefix of pairs once per sequence (exact). Default true. */
  prefixReuse?: boolean | undefined;
  /**
   * Bytes of evaluated prompt heads (the keys and values of system prompt + instruction + query)
   * kept across score calls, least recently used out first: a query's next page, or the next
   * setting of a tune over the same queries, starts from its head instead of evaluating it again
   * (the same bits: a head is only kept as it is computed alone). The llama.cpp engine keeps them
   * as sequence-state files in a private temporary folder (page cache, then disk), the onnx engine
   * in memory. 0 turns it off; no effect with `prefixReuse` false. Default 268435456 (256 MiB).
   */
  prefixCacheBytes?: number | undefined;
  /**
   * How rank-head files are scored. "auto": through the LM-head logits when its yes/no rows are
   * byte-identical to `cls.output` (tied models: faster, parallel sequences), else through
   * llama.cpp's rank pooling. "rank-pooling" forces the latter. Default "auto".
   */
  rankHead?: "auto" | "rank-pooling" | undefined;
  /**
   * Memory the process keeps free beside the llama.cpp context, in bytes: a context that would
   * leave less (by the process's data limit, the container's cgroup limit, the system's available
   * memory or its commit limit, whichever is smallest) is given up for the next smaller one, as if
   * it had not fit. Without that room, the next small allocation (a request body, a tokenization,
   * a saved prompt head) fails instead, and a failed allocation inside llama.cpp aborts the
   * process. 0 turns the check off. Default 268435456 (256 MiB).
   */
  memoryReserveBytes?: number | undefined;
  /**
   * Hears every change the engine makes to fit memory (fewer sequences, a smaller batch or
   * context when llama.cpp cannot allocate). Default: none.
   */
  onMemoryBackoff?: ((event: MemoryBackoff) => void) | undefined;
  /**
   * llama.cpp log level. Default "error", as the CLI: llama.cpp's load warnings about the Qwen3
   * vocabulary (a '</s>' token "probably a bug in the model") are harmless and read like failures.
   */
  logLevel?: "error" | "warn" | "info" | "debug" | undefined;
}

/** The runtime and the model file, as `doctor` sees them. */
export interface LlamaDiagnostics {
  /** "cpu", "cuda", "vulkan" or "metal". */
  device: string;
  gpuDevices: string[];
  /** llama.cpp's feature line ("CPU : SSE3 = 1 | AVX2 = 1 | ..."): the CPU variant in use. */
  systemInfo: string;
  buildType: "localBuild" | "prebuilt";
  cpuMathCores: number;
  threads: number;
  vram: { total: number; free: number } | undefined;
  gpuLayers: number;
  /** Bytes of weights. */
  modelBytes: number;
  /** GGUF general.file_type, e.g. "MOSTLY_Q8_0". */
  fileType: string | undefined;
  kvCacheType: KvCacheType;
  /** The context that was asked for (`capacity` in EngineInfo is what it holds now). */
  asked: ContextShape;
}
