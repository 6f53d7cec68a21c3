import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { PipelineResult } from "../../pipeline/pipeline.js";
import { cohereMeta, defineDialect, extensionFields, knobsOf, nullable, queryField, relevanceResults, topNField } from "./dialect.js";

const documentItem = z.union([z.string(), z.object({ text: z.string() }).loose()], { error: "must be a string or an object with a string `text`" });
const textOf = (d: string | { text: string }): string => (typeof d === "string" ? d : d.text);

/** Cohere v1, Jina, and the vLLM/Jina shape of POST /rerank: documents are strings or {text}. */
export const rerankV1Schema = z
  .object({
    model: nullable(z.string()),
    query: queryField,
    documents: z.array(documentItem, { error: "must be an array" }),
    top_n: topNField,
    return_documents: nullable(z.boolean()),
    // Accepted for compatibility; documents are truncated, not chunked (see `overflow`).
    max_chunks_per_doc: nullable(z.number().int().min(1)),
    rank_fields: nullable(z.array(z.string())),
    ...extensionFields,
  })
  .loose();

/**
 * The dialects of the v1 body. They differ in where they listen, whether documents come back by
 * default, and what follows the results.
 */
const v1Dialect = (name: string, paths: readonly string[], documentsByDefault: boolean, trailer: (outcome: PipelineResult) => object) =>
  defineDialect({
    name,
    paths,
    schema: rerankV1Schema,
    call: (b) => ({ queries: [b.query], documents: b.documents.map(textOf), knobs: { ...knobsOf(b), topN: b.top_n }, order: "ranked" }),
    respond: (b, outcome, { modelName, documents }) => ({
      id: randomUUID(),
      model: b.model ?? modelName,
      results: relevanceResults(outcome, documents, b.return_documents ?? documentsByDefault, b.return_logits),
      usage: { total_tokens: outcome.tokens },
      ...trailer(outcome),
    }),
  });

/** Cohere v1 and Jina: POST /v1/rerank. */
export const cohereV1 = v1Dialect("cohere-v1", ["/v1/rerank"], false, (outcome) => ({ meta: cohereMeta("1", outcome) }));

/** vLLM's (and Jina's) POST /rerank: the v1 body; documents come back unless return_documents is false. */
export const vllmRerank = v1Dialect("vllm-rerank", ["/rerank"], true, () => ({}));

/** Cohere v2: POST /v2/rerank, string documents, max_tokens_per_doc. */
export const cohereV2 = defineDialect({
  name: "cohere-v2",
  paths: ["/v2/rerank"],
  schema: z
    .object({
      model: nullable(z.string()),
      query: queryField,
      documents: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
      top_n: topNField,
      max_tokens_per_doc: nullable(z.number().int().min(1)),
      return_documents: nullable(z.boolean()),
      ...extensionFields,
    })
    .loose(),
  call: (b) => ({ queries: [b.query], documents: b.documents, knobs: { ...knobsOf(b), topN: b.top_n }, order: "ranked", maxTokensPerDoc: b.max_tokens_per_doc }),
  respond: (b, outcome, { documents }) => ({
    id: randomUUID(),
    results: relevanceResults(outcome, documents, b.return_documents ?? false, b.return_logits),
    meta: cohereMeta("2", outcome),
  }),
});
