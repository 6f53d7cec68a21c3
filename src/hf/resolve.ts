import type { ConvertType } from "./convert.js";
import { openCheckpoint } from "./checkpoint.js";
import { cachedConversion } from "./conversion-cache.js";
import { locateCheckpoint } from "./hub-cache.js";
import { bytesProgress } from "./progress.js";

/**
 * The GGUF of a Hugging Face checkpoint (a folder, or an id in the local hub cache), with the rank
 * head: converted on first use into the conversion cache, reused after (the log says which).
 */
/** Where a checkpoint's conversion is kept, and the GGUF type it is converted to. */
export interface CheckpointOptions {
  /** The conversion cache's parent folder. Default: ~/.cache/qwen-rerank. */
  modelsDirectory?: string | undefined;
  /** Default "f16". */
  convertType?: ConvertType | undefined;
}

export function checkpointGguf(source: string, options: CheckpointOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const { dir, name } = locateCheckpoint(source);
  const ckpt = openCheckpoint(dir);
  const type = options.convertType ?? "f16";
  const progress = bytesProgress(`converting ${name}`);
  let announced = false;
  const result = cachedConversion(ckpt, {
    type,
    head: "rank",
    modelsDirectory: options.modelsDirectory,
    name,
    onProgress: (done, total) => {
      if (!announced) {
        log(`qwen-rerank: converting the checkpoint ${dir} to GGUF (${type}, rank head), once: ${(total / 1e9).toFixed(2)} GB of weights`);
        announced = true;
      }
      progress.update(done, total);
    },
  });
  progress.stop();
  if (result.converted) log(`qwen-rerank: converted ${dir} -> ${result.path} in ${result.converted.seconds.toFixed(1)} s; later runs reuse it`);
  else log(`qwen-rerank: using the cached conversion ${result.path} of ${dir}`);
  return result.path;
}
