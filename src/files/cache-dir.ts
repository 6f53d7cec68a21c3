import { homedir } from "node:os";
import { join } from "node:path";

/**
 * A folder of qwen-rerank's own cache: `modelsDirectory`/`name` when the user gave a models
 * directory, else `$XDG_CACHE_HOME/qwen-rerank/name` (~/.cache/qwen-rerank/`name`).
 */
export function cacheDir(name: string, modelsDirectory?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (modelsDirectory) return join(modelsDirectory, name);
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "qwen-rerank", name);
}
