import { z } from "zod";
import type { CallKnobs } from "../../config/knobs.js";
import { KNOBS, knobsFromWire, nullable } from "../../config/knobs.js";
import { parseOrThrow } from "../../config/validation.js";
import type { RerankError } from "../../errors/errors.js";
import { EmptyInputError } from "../../errors/errors.js";
import type { PipelineResult, RerankResult } from "../../pipeline/pipeline.js";
import type { TruncationSide } from "../../prompt/tokens.js";

/** What a request asks of the pipeline, whatever its dialect. */
export interface DialectCall {
  /** One query for every document, or one per document. */
  queries: string[];
  documents: string[];
  knobs: CallKnobs;
  order: "ranked" | "input";
  maxTokensPerDoc?: number | undefined;
  refuseTruncation?: boolean | undefined;
  truncationSide?: TruncationSide | undefined;
  /** The `model` field: which served model answers (docs/server.md, "Several models"). */
  model?: string | undefined;
}

/** How a dialect answers an error: its status and body (TEI's differ from everyone else's). */
export type ErrorFormat = (error: RerankError) => { status: number; body: object };

/** One HTTP API dialect: where it listens, how its body maps to a pipeline call, and its response. */
export interface Dialect {
  name: string;
  /** What it is, for the API reference ("Cohere v1 and Jina rerank"). */
  title: string;
  /** The request body (validates requests; the OpenAPI document is generated from it). */
  schema: z.ZodType;
  /** The response body (types `respond`; the OpenAPI document is generated from it). */
  response: z.ZodType;
  /** POST paths it answers. */
  paths: readonly string[];
  /** On a path shared by several dialects: whether this body is this dialect's. Default: yes. */
  claims?: (json: unknown) => boolean;
  /** Validates a body (errors name the field) and returns the call and how to answer it. */
  parse: (json: unknown) => { call: DialectCall; respond: (outcome: PipelineResult, modelName: string) => unknown };
  /** Its own error answers. Default: the server's `{"error": {type, code, message}}`. */
  errorFormat?: ErrorFormat | undefined;
}

interface DialectSpec<S extends z.ZodType, R extends z.ZodType> {
  name: string;
  title: string;
  response: R;
  paths: readonly string[];
  claims?: (json: unknown) => boolean;
  errorFormat?: ErrorFormat;
  schema: S;
  call: (body: z.infer<S>) => DialectCall;
  respond: (body: z.infer<S>, outcome: PipelineResult, context: { modelName: string; documents: readonly string[] }) => z.input<R>;
}

/** Declares a dialect from its schema and two mappings. */
export function defineDialect<S extends z.ZodType, R extends z.ZodType>(spec: DialectSpec<S, R>): Dialect {
  return {
    name: spec.name,
    title: spec.title,
    schema: spec.schema,
    response: spec.response,
    paths: spec.paths,
    claims: spec.claims,
    errorFormat: spec.errorFormat,
    parse: (json) => {
      const body = parseOrThrow(spec.schema, json);
      // Every dialect routes by `model` (TEI has no such field: there it is our extension).
      const model = (body as { model?: unknown }).model;
      const call = { ...spec.call(body), model: typeof model === "string" && model.length > 0 ? model : undefined };
      return { call, respond: (outcome, modelName) => spec.respond(body, outcome, { modelName, documents: call.documents }) };
    },
  };
}

export { nullable };
export { extensionFields } from "../../config/knobs.js";

/** The knobs of a body that carries our extension fields. */
export const knobsOf = (body: object): CallKnobs => knobsFromWire(body as Record<string, unknown>);

export const queryField = z.string({ error: "must be a string" }).refine((s) => s.trim().length > 0, "must be a non-empty string");
export const topNField = nullable(KNOBS.topN.schema);
/** A document list that must hold at least one entry (every dialect answers an empty one 400). */
export function nonEmpty<T>(list: readonly T[], field: string): readonly T[] {
  if (list.length === 0) throw new EmptyInputError(field);
  return list;
}
/**
 * vLLM's `truncate_prompt_tokens` keeps the last k tokens of the whole prompt, which would cut the
 * reranker's instruction and query: refused (400) rather than ignored; max_length and
 * max_tokens_per_doc cut the document instead.
 */
export const refusedTruncatePromptTokens = z
  .unknown()
  .optional()
  .refine((v) => v === undefined || v === null, "is not supported: it would cut the instruction and query; use max_length or max_tokens_per_doc")
  .transform(() => undefined);
/** Document tokens kept per document (Cohere v2, vLLM). */
export const maxTokensPerDocField = nullable(z.number({ error: "must be a whole number >= 1" }).int("must be a whole number >= 1").min(1, "must be a whole number >= 1"));

const chunkSpan = z.object({ start: z.number().int(), end: z.number().int(), windows: z.number().int(), text: z.string() }).describe("the window of a chunked document that gave its score");
/** The extension fields of a result (`return_logits`, `overflow: "chunk"`). */
export const resultExtrasSchema = {
  logit: z.number().optional().describe("log-odds z, with return_logits"),
  chunk: chunkSpan.optional(),
  truncated: z.literal(true).optional().describe("present when the document was cut to fit max_length (or max_tokens_per_doc) before it was scored"),
};
export const usageSchema = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() });
export const relevanceResultSchema = z.object({
  index: z.number().int(),
  relevance_score: z.number(),
  document: z.union([z.object({ text: z.string() }), z.record(z.string(), z.unknown())]).optional().describe("with return_documents: `{text}`, or the object document as it was sent"),
  ...resultExtrasSchema,
});
export const cohereMetaSchema = z.object({ api_version: z.object({ version: z.string() }), billed_units: z.object({ search_units: z.number() }), language: z.string().optional() });

/**
 * Token usage as OpenAI-style clients read it (vLLM, Together: prompt, completion, total): a
 * reranker only reads, so completion is 0 and the total is the prompt.
 */
export const usageOf = (outcome: PipelineResult) => ({ prompt_tokens: outcome.tokens, completion_tokens: 0, total_tokens: outcome.tokens });

/**
 * Extension fields of one result: the log-odds when asked for, the best window of a chunked
 * document, and whether the document was cut (never silently).
 */
export const resultExtras = (r: RerankResult, returnLogits: boolean | undefined) => ({
  ...(returnLogits ? { logit: r.logit } : {}),
  ...(r.chunk ? { chunk: r.chunk } : {}),
  ...(r.truncated ? { truncated: true as const } : {}),
});

/** Results as Cohere, Jina and vLLM write them: index, relevance_score, and the document when asked. */
export const relevanceResults = (outcome: PipelineResult, documents: readonly string[], withDocuments: boolean, returnLogits: boolean | undefined, sent?: (index: number) => Record<string, unknown> | undefined) =>
  outcome.results.map((r) => ({
    index: r.index,
    relevance_score: r.score,
    ...(withDocuments ? { document: sent?.(r.index) ?? { text: documents[r.index] ?? "" } } : {}),
    ...resultExtras(r, returnLogits),
  }));

/** Cohere's meta block (our language when routing was asked for). */
export const cohereMeta = (version: "1" | "2", outcome: PipelineResult) => ({
  api_version: { version },
  billed_units: { search_units: 1 },
  ...(outcome.language ? { language: outcome.language } : {}),
});
