import { z } from "zod";
import { MAX_SUPPORTED_LENGTH } from "../prompt/template.js";

// Official clients send null for fields they do not use (LangChain: max_chunks_per_doc: null):
// every optional field accepts null as absent.
const opt = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined);

const documentItem = z.union([z.string(), z.object({ text: z.string() }).loose()], { error: "must be a string or an object with a string `text`" });

/** Our extension fields, accepted by every dialect (DESIGN.md section 5). */
export const extensionFields = {
  instruction: opt(z.string().trim().min(1, "must not be empty").max(4096)),
  preset: opt(z.string().min(1)),
  language: opt(z.string().regex(/^(auto|[a-z]{2,3})$/, 'must be "auto" or an ISO 639-1 code such as "zh"')),
  temperature: opt(z.number().finite().positive("must be > 0").max(1000)),
  top_p: opt(z.number().gt(0, "must be in (0, 1]").lte(1, "must be in (0, 1]")),
  threshold: opt(z.number().min(0, "must be in [0, 1]").max(1, "must be in [0, 1]")),
  max_length: opt(z.number().int().min(1).max(MAX_SUPPORTED_LENGTH)),
  overflow: opt(z.enum(["truncate", "chunk"], { error: 'must be "truncate" or "chunk"' })),
  return_logits: opt(z.boolean()),
};

const query = z.string({ error: "must be a string" }).refine((s) => s.trim().length > 0, "must be a non-empty string");

/** Cohere v1, Jina, and the vLLM/Jina shape of POST /rerank. */
export const rerankV1Schema = z
  .object({
    model: opt(z.string()),
    query,
    documents: z.array(documentItem, { error: "must be an array" }),
    top_n: opt(z.number().int().min(1, "must be >= 1")),
    return_documents: opt(z.boolean()),
    max_chunks_per_doc: opt(z.number().int().min(1)),
    rank_fields: opt(z.array(z.string())),
    ...extensionFields,
  })
  .loose();

/** Cohere v2. */
export const rerankV2Schema = z
  .object({
    model: opt(z.string()),
    query,
    documents: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
    top_n: opt(z.number().int().min(1, "must be >= 1")),
    max_tokens_per_doc: opt(z.number().int().min(1)),
    return_documents: opt(z.boolean()),
    ...extensionFields,
  })
  .loose();

/** Hugging Face text-embeddings-inference. */
export const teiRerankSchema = z
  .object({
    query,
    texts: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
    raw_scores: opt(z.boolean()),
    return_text: opt(z.boolean()),
    truncate: opt(z.boolean()),
    truncation_direction: opt(z.enum(["right", "Right"], { error: "only right truncation keeps the official prompt" })),
    ...extensionFields,
  })
  .loose();

const textOrList = z.union([z.string(), z.array(z.string())], { error: "must be a string or an array of strings" });

/** vLLM score API: text_1/text_2 (or queries/documents); 1:1, 1:N, N:N. */
export const scoreSchema = z
  .object({
    model: opt(z.string()),
    text_1: opt(textOrList),
    text_2: opt(textOrList),
    queries: opt(textOrList),
    documents: opt(textOrList),
    ...extensionFields,
  })
  .loose();
