import { randomUUID } from "node:crypto";
import { z } from "zod";
import { ValidationError } from "../../errors/errors.js";
import type { PipelineResult } from "../../pipeline/pipeline.js";
import {
  cohereMeta,
  cohereMetaSchema,
  defineDialect,
  extensionFields,
  knobsOf,
  maxTokensPerDocField,
  nonEmpty,
  nullable,
  queryField,
  refusedTruncatePromptTokens,
  relevanceResultSchema,
  relevanceResults,
  topNField,
  usageOf,
  usageSchema,
} from "./dialect.js";

const documentItem = z.union([z.string(), z.record(z.string(), z.unknown())], { error: "must be a string or an object" });
type DocumentItem = z.infer<typeof documentItem>;

const fieldLines = (d: Record<string, unknown>, fields: readonly string[]) => fields.map((f) => `${f}: ${typeof d[f] === "string" ? d[f] : JSON.stringify(d[f])}`).join("\n");

/**
 * The text of a document: a string as is; an object by its `rank_fields` that it has ("field:
 * value" lines), else by its `text`. Without either, Cohere refuses the object (`allKeys` false)
 * and Together ranks by all its keys (`allKeys` true).
 */
function textOf(d: DocumentItem, i: number, rankFields: readonly string[] | undefined, allKeys: boolean): string {
  if (typeof d === "string") return d;
  const fields = (rankFields ?? []).filter((f) => f in d);
  if (fields.length > 0) return fieldLines(d, fields);
  if (typeof d.text === "string") return d.text;
  if (allKeys && Object.keys(d).length > 0) return fieldLines(d, Object.keys(d));
  throw new ValidationError(`an object document needs a string \`text\`${rankFields ? " or one of rank_fields" : " (or give rank_fields)"}`, `documents.${i}`);
}

/** Cohere v1, Jina, Together and the vLLM/Jina shape of POST /rerank. */
const rerankV1Fields = {
  model: nullable(z.string()),
  query: queryField,
  documents: z.array(documentItem, { error: "must be an array" }),
  top_n: topNField,
  return_documents: nullable(z.boolean()),
  // Accepted for compatibility; documents are truncated, not chunked (see `overflow`).
  max_chunks_per_doc: nullable(z.number().int().min(1)),
  max_tokens_per_doc: maxTokensPerDocField,
  rank_fields: nullable(z.array(z.string())),
  ...extensionFields,
};
const rerankV1Schema = z.object(rerankV1Fields).loose();

/** vLLM's own: `documents` may be one string, `top_n: 0` means all, `use_activation: false` gives log-odds. */
const vllmRerankSchema = z
  .object({
    ...rerankV1Fields,
    documents: z.union([z.string(), z.array(documentItem)], { error: "must be a string or an array" }),
    top_n: nullable(z.number({ error: "must be a whole number >= 0 (0: all)" }).refine((n) => Number.isInteger(n) && n >= 0, "must be a whole number >= 0 (0: all)")),
    use_activation: nullable(z.boolean()),
    truncate_prompt_tokens: refusedTruncatePromptTokens,
  })
  .loose();

/** What the v1 family's mappings read (vLLM's wider `documents` is normalised before). */
type V1Body = Omit<z.infer<z.ZodObject<typeof rerankV1Fields>>, "documents" | "top_n"> & { top_n?: number | undefined; use_activation?: boolean | undefined };

const v1Call = (b: V1Body, documents: readonly DocumentItem[], allKeys: boolean) => ({
  queries: [b.query],
  documents: nonEmpty(documents, "documents").map((d, i) => textOf(d, i, b.rank_fields, allKeys)),
  knobs: { ...knobsOf(b), topN: b.top_n === 0 ? undefined : b.top_n },
  order: "ranked" as const,
  maxTokensPerDoc: b.max_tokens_per_doc,
});

/** An object document comes back as it was sent (Together, Cohere v1), never as the text it was ranked by. */
const sentObject = (documents: unknown) => (index: number) => {
  const d = Array.isArray(documents) ? (documents[index] as unknown) : undefined;
  return d !== null && typeof d === "object" && !Array.isArray(d) ? (d as Record<string, unknown>) : undefined;
};

const v1Respond = (documentsByDefault: (b: V1Body) => boolean, trailer: (outcome: PipelineResult) => object) => (b: V1Body & { documents: unknown }, outcome: PipelineResult, ctx: { modelName: string; documents: readonly string[] }) => {
  const results = relevanceResults(outcome, ctx.documents, b.return_documents ?? documentsByDefault(b), b.return_logits, sentObject(b.documents));
  return {
    id: randomUUID(),
    model: b.model ?? ctx.modelName,
    // use_activation false (vLLM): the log-odds in place of the probability.
    results: b.use_activation === false ? results.map((r, k) => ({ ...r, relevance_score: outcome.results[k]?.logit ?? r.relevance_score })) : results,
    usage: usageOf(outcome),
    ...trailer(outcome),
  };
};

/** Cohere v1, Jina and vLLM's rerank answer (vLLM's has no `meta`). */
const rerankV1Response = z.object({ id: z.string(), model: z.string(), results: z.array(relevanceResultSchema), usage: usageSchema, meta: cohereMetaSchema.optional() });

/** Cohere v1 and Jina: POST /v1/rerank (documents returned by default for a jina-* model name, as Jina does). */
export const cohereV1 = defineDialect({
  name: "cohere-v1",
  title: "Cohere v1 and Jina rerank",
  response: rerankV1Response,
  paths: ["/v1/rerank"],
  schema: rerankV1Schema,
  call: (b) => v1Call(b, b.documents, false),
  // Jina's clients (a jina-* model name) get the documents back unless they say otherwise, as Jina
  // answers; Cohere's do not.
  respond: v1Respond(
    (b) => (b.model ?? "").startsWith("jina-"),
    (outcome) => ({ meta: cohereMeta("1", outcome) }),
  ),
});

const scoreShaped = (json: unknown) => json !== null && typeof json === "object" && ("text_1" in json || "data_1" in json || "queries" in json);

/**
 * vLLM's (and Jina's, Together's) POST /rerank, and SageMaker's POST /invocations for rerank
 * bodies: documents come back unless return_documents is false.
 */
export const vllmRerank = defineDialect({
  name: "vllm-rerank",
  title: "vLLM, Jina and Together rerank (TEI when the body has `texts`)",
  response: rerankV1Response,
  paths: ["/rerank", "/invocations"],
  claims: (json) => !scoreShaped(json),
  schema: vllmRerankSchema,
  call: (b) => v1Call(b, typeof b.documents === "string" ? [b.documents] : b.documents, true),
  respond: v1Respond(
    () => true,
    () => ({}),
  ),
});

/** Cohere v2: POST /v2/rerank, string documents, max_tokens_per_doc. */
export const cohereV2 = defineDialect({
  name: "cohere-v2",
  title: "Cohere v2 rerank",
  response: z.object({ id: z.string(), results: z.array(relevanceResultSchema), meta: cohereMetaSchema, usage: usageSchema }),
  paths: ["/v2/rerank"],
  schema: z
    .object({
      model: nullable(z.string()),
      query: queryField,
      documents: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
      top_n: topNField,
      max_tokens_per_doc: maxTokensPerDocField,
      return_documents: nullable(z.boolean()),
      ...extensionFields,
    })
    .loose(),
  call: (b) => ({ queries: [b.query], documents: [...nonEmpty(b.documents, "documents")], knobs: { ...knobsOf(b), topN: b.top_n }, order: "ranked", maxTokensPerDoc: b.max_tokens_per_doc }),
  respond: (b, outcome, { documents }) => ({
    id: randomUUID(),
    results: relevanceResults(outcome, documents, b.return_documents ?? false, b.return_logits),
    meta: cohereMeta("2", outcome),
    usage: usageOf(outcome),
  }),
});
