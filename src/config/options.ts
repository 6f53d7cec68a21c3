import { z } from "zod";
import { ValidationError } from "../errors/errors.js";
import { MAX_SUPPORTED_LENGTH } from "../prompt/template.js";

/** Per-call knobs of rerank/score (DESIGN.md section 3); absent fields fall back to the reranker's defaults. */
export const callOptionsSchema = z
  .object({
    /** The `<Instruct>` text. Default: the official web-search instruction. */
    instruction: z.string().trim().min(1, "must not be empty").max(4096).optional(),
    /**
     * "auto" detects the query language, or an ISO 639-1 code names it; the instruction then comes
     * from the reranker's languageInstructions map when it has that language. Default: none.
     */
    language: z.string().regex(/^(auto|[a-z]{2,3})$/, 'must be "auto" or an ISO 639-1 code such as "zh"').optional(),
    /** A named preset: its instruction and knobs apply unless given explicitly. Default: none. */
    preset: z.string().min(1).optional(),
    /** score = sigmoid(z / temperature); never changes the order. Default 1 (official). */
    temperature: z.number().finite().positive("must be > 0").max(1000).optional(),
    /** Nucleus over the documents: keep the best until their softmax(z/T) weight reaches top_p. Default 1 (off). */
    topP: z.number().gt(0, "must be in (0, 1]").lte(1, "must be in (0, 1]").optional(),
    /** Drop results whose score is below this. Default: none. */
    threshold: z.number().min(0, "must be in [0, 1]").max(1, "must be in [0, 1]").optional(),
    /** Keep only the n best results. Default: all. */
    topN: z.number().int().min(1, "must be >= 1").optional(),
    /** Max tokens of PREFIX+BODY+SUFFIX per pair; BODY is cut to fit. Default: the reranker's (8192). */
    maxLength: z.number().int().min(1).max(MAX_SUPPORTED_LENGTH).optional(),
    /**
     * A document longer than max_length: "truncate" cuts it (official behaviour); "chunk" scores
     * overlapping windows of it and keeps the best (MaxP). Default "truncate".
     */
    overflow: z.enum(["truncate", "chunk"], { error: 'must be "truncate" or "chunk"' }).optional(),
    /** Include the document text in each result. Default false. */
    returnDocuments: z.boolean().optional(),
  })
  .strict();

export type CallOptions = z.infer<typeof callOptionsSchema>;

const fieldName = (path: ReadonlyArray<PropertyKey>): string => path.map(String).join(".") || "input";

/** Parses with a zod schema and turns the first issue into a ValidationError naming the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue ? fieldName(issue.path) : "input";
  throw new ValidationError(issue?.message ?? "invalid value", prefix ? `${prefix}.${path}` : path);
}

export const querySchema = z.string().refine((s) => s.trim().length > 0, "must be a non-empty string");
export const documentsSchema = z.array(z.string({ error: "must be a string" }));
export const pairsSchema = z.array(z.object({ query: querySchema, document: z.string({ error: "must be a string" }) }), {
  error: "must be an array of {query, document}",
});
