import { z } from "zod";
import type { Dialect } from "./dialects/dialect.js";

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), without the `$schema` line. */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, target: "draft-2020-12", unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

const oneOrMany = (schemas: Array<Record<string, unknown>>) => (schemas.length === 1 ? (schemas[0] ?? {}) : { oneOf: schemas });

const errorBody = z.object({ error: z.object({ type: z.string(), code: z.string(), message: z.string() }) });
const teiErrorBody = z.object({ error: z.string(), error_type: z.string() });

const json = (schema: Record<string, unknown>) => ({ "application/json": { schema } });
/** "post" + "/v1/rerank" -> "postV1Rerank". */
const operationId = (method: string, path: string) => method + path.replace(/[^a-z0-9]+(.)?/gi, (_, c: string | undefined) => (c ?? "").toUpperCase());

/** A GET route: JSON described by a zod schema, or another media type. */
export interface GetRoute {
  path: string;
  summary: string;
  /** The JSON body's schema, or the media type of a non-JSON answer. */
  body: z.ZodType | "text/plain" | "text/html";
}

/**
 * The OpenAPI 3.1 document of the server, generated from the dialects' request and response
 * schemas (the same zod schemas that validate requests and type responses) and the GET routes.
 */
/** A POST route that is not a rerank dialect (tokenization): its request and response shapes. */
export interface PostRoute {
  path: string;
  summary: string;
  requests: z.ZodType[];
  responses: z.ZodType[];
}

export function openApiDocument(o: { version: string; dialects: readonly Dialect[]; gets: readonly GetRoute[]; posts?: readonly PostRoute[] }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const postPaths = [...new Set(o.dialects.flatMap((d) => d.paths))];
  for (const path of postPaths) {
    const dialects = o.dialects.filter((d) => d.paths.includes(path));
    const errors = dialects.some((d) => d.errorFormat) ? oneOrMany([{ $ref: "#/components/schemas/Error" }, { $ref: "#/components/schemas/TeiError" }]) : { $ref: "#/components/schemas/Error" };
    paths[path] = {
      post: {
        operationId: operationId("post", path),
        summary: dialects.map((d) => d.title).join("; "),
        requestBody: { required: true, content: json(oneOrMany(dialects.map((d) => jsonSchema(d.schema, "input")))) },
        responses: {
          "200": { description: "ranked (or scored) documents", content: json(oneOrMany(dialects.map((d) => jsonSchema(d.response, "output")))) },
          "400": { description: "invalid request (the message names the field)", content: json(errors) },
          "401": { description: "missing or wrong API key", content: json({ $ref: "#/components/schemas/Error" }) },
          "413": { description: "body, document count or size over the limits", content: json(errors) },
          "422": { description: "validation error (TEI dialect)", content: json(errors) },
          "429": { description: "queue full (Retry-After)", content: json(errors) },
          "503": { description: "model loading or engine unavailable", content: json(errors) },
          "504": { description: "request timeout", content: json(errors) },
          "507": { description: "a pair does not fit in memory even alone", content: json(errors) },
        },
      },
    };
  }
  for (const p of o.posts ?? []) {
    paths[p.path] = {
      post: {
        operationId: operationId("post", p.path),
        summary: p.summary,
        requestBody: { required: true, content: json(oneOrMany(p.requests.map((r) => jsonSchema(r, "input")))) },
        responses: {
          "200": { description: p.summary, content: json(oneOrMany(p.responses.map((r) => jsonSchema(r, "output")))) },
          "400": { description: "invalid request (the message names the field)", content: json({ $ref: "#/components/schemas/Error" }) },
        },
      },
    };
  }
  for (const g of o.gets) {
    const content = typeof g.body === "string" ? { [g.body]: { schema: { type: "string" } } } : json(jsonSchema(g.body, "output"));
    paths[g.path] = { get: { operationId: operationId("get", g.path), summary: g.summary, responses: { "200": { description: g.summary, content } } } };
  }
  return {
    openapi: "3.1.0",
    info: { title: "qwen-rerank", version: o.version, description: "Qwen3-Reranker behind Cohere, Jina, vLLM, Together and TEI compatible APIs. Extension fields (instruction, preset, language, overflow, temperature, top_p, threshold, max_length, return_logits) work in every dialect." },
    paths,
    components: {
      schemas: { Error: jsonSchema(errorBody, "output"), TeiError: jsonSchema(teiErrorBody, "output") },
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "only when the server runs with --api-key" } },
    },
    security: [{}, { bearer: [] }],
  };
}
