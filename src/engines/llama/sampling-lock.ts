import type { LlamaContext } from "node-llama-cpp";

interface AddonContextLike {
  sampleToken: (...args: unknown[]) => Promise<unknown>;
}

/**
 * Makes token sampling of one context strictly sequential.
 *
 * Why: with several sequences decoded in one batch, llama.cpp (kv_unified=false, so the batch is
 * split per sequence) records output swaps and applies them lazily inside the first
 * llama_get_logits_ith() call, while node-llama-cpp samples each sequence on its own libuv worker
 * thread. Two samplers running at once both apply the swaps and documents get each other's
 * scores (REFERENCE.md). UV_THREADPOOL_SIZE=1 hides it but must be set before Node starts, which a
 * library cannot do. Serialising the native sampleToken calls of this context removes the race
 * for every caller; sampling is a tiny part of the work (the decode itself stays batched).
 *
 * This touches node-llama-cpp's internal `_ctx` (pinned at 3.21.1); it fails loudly if the
 * internals change, and a regression test compares multi-sequence scores with single-sequence ones.
 */
export function serializeSampling(context: LlamaContext): void {
  const addon = (context as unknown as { _ctx?: AddonContextLike })._ctx;
  if (!addon || typeof addon.sampleToken !== "function") {
    throw new Error("node-llama-cpp internals changed (LlamaContext._ctx.sampleToken); cannot guard parallel sampling");
  }
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
