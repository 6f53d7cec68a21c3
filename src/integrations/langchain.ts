import type { DocumentInterface } from "@langchain/core/documents";
import { BaseDocumentCompressor } from "@langchain/core/retrievers/document_compressors";
import type { CallKnobs } from "../config/knobs.js";
import { callOptionsSchema } from "../config/knobs.js";
import { parseOrThrow } from "../config/validation.js";
import type { Reranker, RerankerOptions } from "../reranker.js";
import { createReranker } from "../reranker.js";

/**
 * Options of the LangChain compressor: the model (a GGUF path or `hf:` URI, with createReranker's
 * engine options, or a Reranker you already hold) and the knobs of every call.
 */
export type QwenRerankCompressorOptions = CallKnobs & {
  /** A GGUF path or `hf:` URI (loaded on first use), or an open Reranker (which you dispose). Required. */
  model: string | Reranker;
  /** Engine and default-knob settings when `model` is a path. Default: the engine's defaults. */
  engine?: Omit<RerankerOptions, "model"> | undefined;
};

type RerankInput = DocumentInterface | string | Record<string, string>;

const textOf = (d: RerankInput): string => (typeof d === "string" ? d : typeof d.pageContent === "string" ? d.pageContent : JSON.stringify(d));

/**
 * A LangChain.js document compressor that reranks with Qwen3-Reranker in this process, usable in
 * ContextualCompressionRetriever. `compressDocuments` returns the documents best first (top_n,
 * top_p and threshold applied) with `relevanceScore` and `logit` in their metadata, as
 * `CohereRerank` writes them.
 */
export class QwenRerankCompressor extends BaseDocumentCompressor {
  private readonly knobs: CallKnobs;
  private reranker: Promise<Reranker> | undefined;
  private readonly owned: boolean;

  constructor(private readonly options: QwenRerankCompressorOptions) {
    super();
    const { model: _model, engine: _engine, ...knobs } = options;
    // Bad knobs fail here, with the field named, not at the first query.
    this.knobs = parseOrThrow(callOptionsSchema, knobs);
    this.owned = typeof options.model === "string";
    if (typeof options.model !== "string") this.reranker = Promise.resolve(options.model);
  }

  private load(): Promise<Reranker> {
    if (!this.reranker) {
      const model = this.options.model as string;
      const loading = createReranker({ ...this.options.engine, model });
      this.reranker = loading;
      loading.catch(() => (this.reranker = undefined));
    }
    return this.reranker;
  }

  /** The documents best first, with `relevanceScore` (and `logit`) added to their metadata. */
  async compressDocuments(documents: DocumentInterface[], query: string): Promise<DocumentInterface[]> {
    if (documents.length === 0) return [];
    const reranker = await this.load();
    const results = await reranker.rerank(query, documents.map(textOf), this.knobs);
    return results.flatMap((r) => {
      const d = documents[r.index];
      return d ? [{ ...d, metadata: { ...d.metadata, relevanceScore: r.score, logit: r.logit } }] : [];
    });
  }

  /** As CohereRerank.rerank: `{ index, relevanceScore }` best first; `topN` and the knobs of this call override the constructor's. */
  async rerank(documents: RerankInput[], query: string, options: CallKnobs = {}): Promise<Array<{ index: number; relevanceScore: number }>> {
    const knobs = { ...this.knobs, ...parseOrThrow(callOptionsSchema, options) };
    if (documents.length === 0) return [];
    const reranker = await this.load();
    return (await reranker.rerank(query, documents.map(textOf), knobs)).map((r) => ({ index: r.index, relevanceScore: r.score }));
  }

  /** Frees the model when this compressor loaded it. */
  async dispose(): Promise<void> {
    if (!this.owned || !this.reranker) return;
    const loading = this.reranker;
    this.reranker = undefined;
    await (await loading.catch(() => undefined))?.dispose();
  }
}
