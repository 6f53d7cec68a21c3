import { z } from "zod";
import type { CallKnobs } from "../../config/knobs.js";
import { knobsFromWire, nullable } from "../../config/knobs.js";
import { parseOrThrow } from "../../config/validation.js";
import type { PipelineResult, RerankResult } from "../../pipeline/pipeline.js";

/** What a request asks of the pipeline, whatever its dialect. */
export interface DialectCall {
  /** One query for every document, or one per document. */
  queries: string[];
  documents: string[];
  knobs: CallKnobs;
  order: "ranked" | "input";
  maxTokensPerDoc?: number | undefined;
  refuseTruncation?: boolean | undefined;
}

/** One HTTP API dialect: where it listens, how its body maps to a pipeline call, and its response. */
export interface Dialect {
  name: string;
  /** POST paths it answers. */
  paths: readonly string[];
  /** On a path shared by several dialects: whether this body is this dialect's. Default: yes. */
  claims?: (json: unknown) => boolean;
  /** Validates a body (errors name the field) and returns the call and how to answer it. */
  parse: (json: unknown) => { call: DialectCall; respond: (outcome: PipelineResult, modelName: string) => unknown };
}

interface DialectSpec<S extends z.ZodType> {
  name: string;
  paths: readonly string[];
  claims?: (json: unknown) => boolean;
  schema: S;
  call: (body: z.infer<S>) => DialectCall;
  respond: (body: z.infer<S>, outcome: PipelineResult, context: { modelName: string; documents: readonly string[] }) => unknown;
}

/** Declares a dialect from its schema and two mappings. */
export function defineDialect<S extends z.ZodType>(spec: DialectSpec<S>): Dialect {
  return {
    name: spec.name,
    paths: spec.paths,
    claims: spec.claims,
    parse: (json) => {
      const body = parseOrThrow(spec.schema, json);
      const call = spec.call(body);
      return { call, respond: (outcome, modelName) => spec.respond(body, outcome, { modelName, documents: call.documents }) };
    },
  };
}

export { nullable };
export { extensionFields } from "../../config/knobs.js";

/** The knobs of a body that carries our extension fields. */
export const knobsOf = (body: object): CallKnobs => knobsFromWire(body as Record<string, unknown>);

export const queryField = z.string({ error: "must be a string" }).refine((s) => s.trim().length > 0, "must be a non-empty string");
export const topNField = nullable(z.number().int().min(1, "must be >= 1"));

/**
 * Extension fields of one result: the log-odds when asked for, and the best window of a chunked
 * document.
 */
export const resultExtras = (r: RerankResult, returnLogits: boolean | undefined) => ({
  ...(returnLogits ? { logit: r.logit } : {}),
  ...(r.chunk ? { chunk: r.chunk } : {}),
});

/** Results as Cohere, Jina and vLLM write them: index, relevance_score, and the document when asked. */
export const relevanceResults = (outcome: PipelineResult, documents: readonly string[], withDocuments: boolean, returnLogits: boolean | undefined) =>
  outcome.results.map((r) => ({
    index: r.index,
    relevance_score: r.score,
    ...(withDocuments ? { document: { text: documents[r.index] } } : {}),
    ...resultExtras(r, returnLogits),
  }));

/** Cohere's meta block (our language when routing was asked for). */
export const cohereMeta = (version: "1" | "2", outcome: PipelineResult) => ({
  api_version: { version },
  billed_units: { search_units: 1 },
  ...(outcome.language ? { language: outcome.language } : {}),
});
