import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { LlamaContext } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";

// The one file that reaches into node-llama-cpp's private parts (docs/architecture.md, "The
// llama.cpp engine"). Everything here was read from, and tested against, this version.
export const PINNED_NODE_LLAMA_CPP = "3.21.1";

/** The installed node-llama-cpp version, read from its package.json (the package exports no such path). */
function installedVersion(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
    const pkg = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : undefined;
  } catch {
    return undefined;
  }
}

/** Refuses to start on another node-llama-cpp than the pinned one: the private fields below may have moved. */
export function checkNodeLlamaCppVersion(read: () => string | undefined = installedVersion): void {
  const version = read();
  if (version !== PINNED_NODE_LLAMA_CPP) {
    throw new RerankError(
      "engine_unavailable",
      `qwen-rerank needs node-llama-cpp ${PINNED_NODE_LLAMA_CPP}, found ${version ?? "an unreadable version"}; reinstall with \`npm ci\` (the version is pinned in package.json)`,
    );
  }
}

/** The context's native handle: the two methods we call on it. */
interface AddonContext {
  sampleToken: (...args: unknown[]) => Promise<unknown>;
  getEmbedding: (inputTokens: number, maxVectorSize: number) => Float64Array;
}

function addonOf(context: LlamaContext): AddonContext {
  const addon = (context as unknown as { _ctx?: Partial<AddonContext> })._ctx;
  if (!addon || typeof addon.sampleToken !== "function" || typeof addon.getEmbedding !== "function") {
    throw new RerankError("engine_unavailable", `node-llama-cpp internals changed (LlamaContext._ctx); qwen-rerank supports node-llama-cpp ${PINNED_NODE_LLAMA_CPP}`);
  }
  return addon as AddonContext;
}

/**
 * Context options that turn on llama.cpp's embedding mode with rank pooling: node-llama-cpp only
 * sets them for its LlamaRankingContext, whose one-locked-sequence evaluation we do not want.
 */
export const rankPoolingContextOptions: object = { _embeddings: true, _ranking: true };

/**
 * The pooled rank-head outputs [P(yes), P(no)] of sequence 0 after the last decode (node-llama-cpp
 * reads sequence 0 only, which is why rank pooling uses one sequence).
 */
export function rankPoolingOutput(context: LlamaContext, inputTokens: number): { pYes: number; pNo: number } {
  const out = addonOf(context).getEmbedding(inputTokens, 2);
  return { pYes: out[0] ?? Number.NaN, pNo: out[1] ?? Number.NaN };
}

/**
 * Makes token sampling of one context strictly sequential.
 *
 * Why: with several sequences decoded in one batch, llama.cpp (kv_unified=false, so the batch is
 * split per sequence) records output swaps and applies them lazily inside the first
 * llama_get_logits_ith() call, while node-llama-cpp samples each sequence on its own libuv worker
 * thread. Two samplers running at once both apply the swaps and documents get each other's
 * scores. UV_THREADPOOL_SIZE=1 hides it but must be set before Node starts, which a library
 * cannot do. Serialising the native sampleToken calls of this context removes the race for every
 * caller; sampling is a tiny part of the work. A regression test compares multi-sequence scores
 * with single-sequence ones.
 */
export function serializeSampling(context: LlamaContext): void {
  const addon = addonOf(context);
  const original = addon.sampleToken.bind(addon);
  let tail: Promise<unknown> = Promise.resolve();
  // The native method is a read-only prototype property: shadow it with an own property.
  Object.defineProperty(addon, "sampleToken", {
    configurable: true,
    value: (...args: unknown[]) => {
      const run = tail.then(() => original(...args));
      tail = run.catch(() => undefined);
      return run;
    },
  });
}
