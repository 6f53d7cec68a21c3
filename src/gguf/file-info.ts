import { statSync } from "node:fs";
import type { GgufFileInfo } from "node-llama-cpp";
import { readGgufFileInfo } from "node-llama-cpp";

let last: { path: string; size: number; mtimeMs: number; info: Promise<GgufFileInfo> } | undefined;

/** How long the last header is kept: a start's two reads are seconds apart, and a server need not hold it (tens of MB of vocabulary strings). */
const KEEP_MS = 60_000;

/**
 * A GGUF file's header with its tensor table, read once for the last file asked for: a start reads
 * it for the engine choice and again for the onnx engine, ~0.25 s each at 0.6B (151,936 vocabulary
 * strings). Read again when the file's size or modification time changed, or after KEEP_MS.
 * Callers must not modify it.
 */
export function ggufFileInfo(path: string): Promise<GgufFileInfo> {
  const { size, mtimeMs } = statSync(path);
  if (last && last.path === path && last.size === size && last.mtimeMs === mtimeMs) return last.info;
  const info = readGgufFileInfo(path, { readTensorInfo: true });
  const entry = { path, size, mtimeMs, info };
  last = entry;
  const forget = () => {
    if (last === entry) last = undefined;
  };
  setTimeout(forget, KEEP_MS).unref();
  // A file that failed to parse is not remembered.
  info.catch(forget);
  return info;
}
