import { statSync } from "node:fs";
import type { GgufFileInfo } from "node-llama-cpp";
import { readGgufFileInfo } from "node-llama-cpp";

let last: { path: string; size: number; mtimeMs: number; info: Promise<GgufFileInfo> } | undefined;

/**
 * A GGUF file's header with its tensor table, read once for the last file asked for: a start reads
 * it for the engine choice and again for the onnx engine, ~0.25 s each at 0.6B (151,936 vocabulary
 * strings). Read again when the file's size or modification time changed. Callers must not modify it.
 */
export function ggufFileInfo(path: string): Promise<GgufFileInfo> {
  const { size, mtimeMs } = statSync(path);
  if (last && last.path === path && last.size === size && last.mtimeMs === mtimeMs) return last.info;
  const info = readGgufFileInfo(path, { readTensorInfo: true });
  const entry = { path, size, mtimeMs, info };
  last = entry;
  // A file that failed to parse is not remembered.
  info.catch(() => {
    if (last === entry) last = undefined;
  });
  return info;
}
