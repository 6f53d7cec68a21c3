import { existsSync, statSync } from "node:fs";
import { RerankError } from "../../errors/errors.js";
import { isCheckpointDir } from "../../hf/checkpoint.js";
import type { ConvertType } from "../../hf/convert.js";
import { isHubId } from "../../hf/hub-cache.js";
import type { CheckpointOptions } from "../../hf/resolve.js";

/** Whether a model source is a URI to resolve (hf:, https:) rather than a local path. */
export const isUri = (s: string): boolean => /^(hf:|huggingface:|https?:\/\/)/i.test(s);

/** Whether a source names a Hugging Face checkpoint (a model folder, or an id found in the local hub cache) rather than a GGUF. */
export const isCheckpointSource = (s: string): boolean => !isUri(s) && (isCheckpointDir(s) || (!existsSync(s) && isHubId(s)));

/** What a model source may be resolved with. */
export interface ModelSourceOptions extends CheckpointOptions {
  /** Where `hf:` downloads and checkpoint conversions are cached. */
  modelsDirectory?: string | undefined;
  /** Let `hf:` URIs download. Default true. */
  allowDownload?: boolean | undefined;
  /** The GGUF type a Hugging Face checkpoint is converted to. Default "f16". */
  convertType?: ConvertType | undefined;
}

/**
 * Turns what the user gave into a local GGUF path: a GGUF path as is; an `hf:` URI through
 * node-llama-cpp's resolver (a cached download, or a fetch when online; offline, a clear error);
 * a Hugging Face checkpoint folder or id (`Qwen/Qwen3-Reranker-8B`, looked up in the local hub
 * cache, never downloaded) converted once into the conversion cache and reused.
 */
export async function resolveModelSource(source: string, options: ModelSourceOptions = {}): Promise<string> {
  if (isCheckpointSource(source)) {
    // Loaded on demand: the converter is not needed to open a GGUF.
    const { checkpointGguf } = await import("../../hf/resolve.js");
    return checkpointGguf(source, options);
  }
  if (!isUri(source)) {
    if (!existsSync(source)) throw new RerankError("model_not_found", `model file not found: ${source}`);
    if (!statSync(source).isFile()) throw new RerankError("model_not_found", `model path is not a file or a Hugging Face model folder (no config.json): ${source}`);
    return source;
  }
  const allowDownload = options.allowDownload ?? true;
  try {
    const { resolveModelFile } = await import("node-llama-cpp");
    return await resolveModelFile(source, { directory: options.modelsDirectory, cli: false, download: allowDownload ? "auto" : false });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const remedy = allowDownload
      ? "If this machine is offline, download the GGUF elsewhere and pass its path with --model."
      : "Downloads are off: put the file there or allow downloads.";
    throw new RerankError(
      "model_not_found",
      `cannot resolve ${source}: ${reason}. ${remedy}`,
      { cause: error },
    );
  }
}
