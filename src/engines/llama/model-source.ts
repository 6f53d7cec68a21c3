import { existsSync, statSync } from "node:fs";
import { resolveModelFile } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";

/** Whether a model source is a URI to resolve (hf:, https:) rather than a local path. */
export const isUri = (s: string): boolean => /^(hf:|huggingface:|https?:\/\/)/i.test(s);

/**
 * Turns what the user gave (a path or an `hf:` URI) into a local GGUF path. URIs go through
 * node-llama-cpp's own resolver, which reuses a cached download and fetches otherwise; when
 * the network is unreachable the user gets a clear error naming the URI and the remedy.
 */
export async function resolveModelSource(source: string, modelsDirectory?: string, allowDownload = true): Promise<string> {
  if (!isUri(source)) {
    if (!existsSync(source)) throw new RerankError("model_not_found", `model file not found: ${source}`);
    if (!statSync(source).isFile()) throw new RerankError("model_not_found", `model path is not a file: ${source}`);
    return source;
  }
  try {
    return await resolveModelFile(source, { directory: modelsDirectory, cli: false, download: allowDownload ? "auto" : false });
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
