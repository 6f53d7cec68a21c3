// Types only: at run time this module needs nothing from the AI SDK, so the main entry and users
// of other frameworks install nothing extra (@ai-sdk/provider is an optional peer dependency).
import type { RerankingModelV3, RerankingModelV3CallOptions, SharedV3Warning } from "@ai-sdk/provider";
import type { CallKnobs } from "../config/knobs.js";
import { callOptionsSchema } from "../config/knobs.js";
import { parseOrThrow } from "../config/validation.js";
import type { Reranker, RerankerOptions } from "../reranker.js";
import { createReranker } from "../reranker.js";

/** The key of our provider options: `providerOptions: { "qwen-rerank": { instruction, temperature, ... } }`. */
export const PROVIDER_ID = "qwen-rerank";

/** Engine and default-knob settings shared by the models of one provider (everything of createReranker but `model`). */
export type QwenRerankProviderSettings = Omit<RerankerOptions, "model">;

export interface QwenRerankProvider {
  /** A reranking model for `rerank()` from `ai`: a GGUF path or an `hf:` URI. Loaded on first use, once. */
  reranking(model: string, settings?: QwenRerankProviderSettings): RerankingModelV3;
  /** The AI SDK's provider method name for the same. */
  rerankingModel(model: string, settings?: QwenRerankProviderSettings): RerankingModelV3;
  /** Frees every model this provider loaded. */
  dispose(): Promise<void>;
}

/**
 * The knobs of one call from its provider options (the same validation as the library: a bad
 * value throws a ValidationError that names the field); `rerank({ topN })` wins over theirs.
 */
function knobsFrom(options: RerankingModelV3CallOptions): CallKnobs {
  const raw = options.providerOptions?.[PROVIDER_ID];
  const knobs = raw === undefined ? {} : parseOrThrow(callOptionsSchema, raw);
  return { ...knobs, topN: options.topN ?? knobs.topN };
}

/**
 * An AI SDK provider that runs Qwen3-Reranker in this process:
 * `rerank({ model: qwenRerank.reranking("model.gguf"), query, documents, topN })`.
 * Object documents are scored as their JSON text (as the AI SDK's Cohere provider sends them), with
 * a warning. Provider options carry our knobs: instruction, preset, temperature, topP, threshold,
 * maxLength, overflow, language.
 */
export function createQwenRerank(defaults: QwenRerankProviderSettings = {}): QwenRerankProvider {
  const loaded = new Map<string, Promise<Reranker>>();
  const load = (model: string, settings: QwenRerankProviderSettings): Promise<Reranker> => {
    const key = JSON.stringify([model, settings]);
    let reranker = loaded.get(key);
    if (!reranker) {
      reranker = createReranker({ ...defaults, ...settings, model });
      loaded.set(key, reranker);
      // A failed load is not remembered: the next call tries again.
      reranker.catch(() => loaded.delete(key));
    }
    return reranker;
  };
  const reranking = (model: string, settings: QwenRerankProviderSettings = {}): RerankingModelV3 => ({
    specificationVersion: "v3",
    provider: PROVIDER_ID,
    modelId: model,
    async doRerank(options) {
      const knobs = knobsFrom(options);
      const warnings: SharedV3Warning[] = [];
      const { documents } = options;
      const texts = documents.type === "text" ? documents.values : documents.values.map((v) => JSON.stringify(v));
      if (documents.type === "object") warnings.push({ type: "compatibility", feature: "object documents", details: "object documents are scored as their JSON text" });
      const reranker = await load(model, settings);
      const results = await reranker.rerank(options.query, texts, { ...knobs, signal: options.abortSignal });
      return {
        ranking: results.map((r) => ({ index: r.index, relevanceScore: r.score })),
        providerMetadata: { [PROVIDER_ID]: { logits: results.map((r) => r.logit), truncated: results.map((r) => r.truncated) } },
        warnings,
        response: { modelId: model, timestamp: new Date() },
      };
    },
  });
  return {
    reranking,
    rerankingModel: reranking,
    async dispose() {
      const all = [...loaded.values()];
      loaded.clear();
      await Promise.all(all.map(async (r) => (await r.catch(() => undefined))?.dispose()));
    },
  };
}

/** The default provider (engine defaults); `qwenRerank.dispose()` frees its models. */
export const qwenRerank: QwenRerankProvider = createQwenRerank();
