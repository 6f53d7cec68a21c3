import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { RerankError } from "../errors/errors.js";
import { CONFIG_FILE, isCheckpointDir } from "./checkpoint.js";

/** A Hugging Face model id (`Qwen/Qwen3-Reranker-8B`), optionally with a revision (`@main`, `@<commit>`). */
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w.-]+))?$/;

// A missing `dir/file.gguf` is a missing file, not an id.
export const isHubId = (s: string): boolean => HUB_ID.test(s) && !/\.gguf$/i.test(s);

/** The hub cache folder, as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, "hub");
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface", "hub");
}

/**
 * Finds a model id's snapshot folder in the local hub cache
 * (`models--ORG--NAME/snapshots/<commit>`, the commit named by `refs/<revision>`, default main).
 * Nothing is downloaded: a miss is an error naming every path looked at and how to fetch it.
 */
export function resolveHubId(id: string, env: NodeJS.ProcessEnv = process.env): string {
  const m = HUB_ID.exec(id);
  if (!m) throw new RerankError("invalid_request", `${id} is not a Hugging Face model id (ORG/NAME)`);
  const [, org = "", name = "", revision = "main"] = m;
  const cache = hubCacheDir(env);
  const repo = join(cache, `models--${org}--${name}`);
  const looked: string[] = [];
  const snapshot = (commit: string): string | undefined => {
    const dir = join(repo, "snapshots", commit);
    looked.push(dir);
    return existsSync(join(dir, CONFIG_FILE)) ? dir : undefined;
  };
  const ref = join(repo, "refs", revision);
  looked.push(ref);
  if (existsSync(ref)) {
    const found = snapshot(readFileSync(ref, "utf8").trim());
    if (found) return found;
  }
  // A revision given as a commit hash is a snapshot name itself.
  const direct = snapshot(revision);
  if (direct) return direct;
  if (revision === "main" && existsSync(join(repo, "snapshots"))) {
    // No refs/main (a cache copied without it): the newest complete snapshot.
    const candidates = readdirSync(join(repo, "snapshots"))
      .map((c) => join(repo, "snapshots", c))
      .filter((d) => existsSync(join(d, CONFIG_FILE)))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    if (candidates[0]) return candidates[0];
  }
  throw new RerankError(
    "model_not_found",
    `${id} is not in the local Hugging Face cache (looked at ${[...new Set(looked)].join(", ")}; set HF_HUB_CACHE or HF_HOME if your cache is elsewhere). ` +
      `qwen-rerank downloads nothing from the hub: fetch it with \`huggingface-cli download ${org}/${name}\` or pass the model folder's path.`,
  );
}

/**
 * Where a checkpoint named by the user is: a model folder as is, else an id in the local hub cache;
 * `name` is the model's (the id, or the folder's name: a hub snapshot folder is named by its commit).
 */
export function locateCheckpoint(source: string, env: NodeJS.ProcessEnv = process.env): { dir: string; name: string } {
  if (isCheckpointDir(source)) return { dir: source, name: basename(resolve(source)) };
  if (existsSync(source)) throw new RerankError("model_not_found", `${source} is not a Hugging Face model folder (no ${CONFIG_FILE} in it)`);
  if (!isHubId(source)) throw new RerankError("model_not_found", `${source}: no such folder, and not a Hugging Face id (ORG/NAME)`);
  return { dir: resolveHubId(source, env), name: source.split("@")[0] ?? source };
}
