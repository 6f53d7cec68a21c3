import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import type { z } from "zod";
import { parseOrThrow } from "../config/options.js";
import { OverloadedError, RerankError, ValidationError, isRerankError } from "../errors/errors.js";
import { httpStatusOf } from "../errors/status.js";
import type { ServerMetrics } from "./metrics.js";
import { rerankV1Schema, rerankV2Schema, scoreSchema, teiRerankSchema } from "./schemas.js";
import type { Knobs, RerankService, ServiceOutcome, ServiceResult } from "./service.js";

/** Server limits and switches. */
export interface ServerOptions {
  /** Bearer token required on every endpoint except GET /health. Default: none (open). */
  apiKey?: string | undefined;
  /** Origins allowed by CORS ("*" for any). Default: none (CORS off). */
  corsOrigins?: string[] | undefined;
  /** Largest request body in bytes. Default 10 MiB. */
  maxBodyBytes?: number | undefined;
  /** Most documents in one request. Default 1000. */
  maxDocuments?: number | undefined;
  /** Most characters in one document (or query). Default 100000. */
  maxDocumentChars?: number | undefined;
  /** Model name reported by /v1/models and in responses. Default: the engine's model file name. */
  modelName?: string | undefined;
  /** Receives one structured line per request. Default: none. */
  log?: ((line: Record<string, unknown>) => void) | undefined;
}

export interface AppDeps {
  /** The service once the model is loaded; undefined while loading (503). */
  service(): RerankService | undefined;
  metrics: ServerMetrics;
  options: ServerOptions;
}

interface Handled {
  body: unknown;
  outcome?: ServiceOutcome<ServiceResult>;
}

type DocumentItem = string | { text: string };
const textOf = (d: DocumentItem): string => (typeof d === "string" ? d : d.text);

function errorBody(error: RerankError): { error: { type: string; code: string; message: string } } {
  const status = httpStatusOf[error.code];
  const type = status >= 500 ? "server_error" : status === 429 ? "rate_limit_error" : status === 401 ? "authentication_error" : "invalid_request_error";
  return { error: { type, code: error.code, message: error.message } };
}

function constantTimeEqual(a: string, b: string): boolean {
  // Hash both sides so lengths match and the comparison time does not depend on the key.
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

function knobsOf(body: {
  instruction?: string | undefined;
  preset?: string | undefined;
  language?: string | undefined;
  temperature?: number | undefined;
  top_p?: number | undefined;
  threshold?: number | undefined;
  max_length?: number | undefined;
  overflow?: "truncate" | "chunk" | undefined;
}): Knobs {
  return { instruction: body.instruction, preset: body.preset, language: body.language, temperature: body.temperature, topP: body.top_p, threshold: body.threshold, maxLength: body.max_length, overflow: body.overflow };
}

/** Builds the HTTP app (no listen): one core service, one thin adapter per API dialect. */
type Env = { Variables: { requestId: string } };

export function createApp(deps: AppDeps): Hono<Env> {
  const o = deps.options;
  const maxDocuments = o.maxDocuments ?? 1000;
  const maxChars = o.maxDocumentChars ?? 100_000;
  const app = new Hono<Env>();
  let lastEngineError: string | undefined;

  if (o.corsOrigins && o.corsOrigins.length > 0) {
    const origins = o.corsOrigins;
    app.use("*", cors({ origin: origins.includes("*") ? "*" : origins }));
  }
  app.use("*", async (c, next) => {
    // A client's own id is echoed when it is short and printable; otherwise a new one is made.
    const given = c.req.header("x-request-id");
    const requestId = given && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    c.set("requestId", requestId);
    c.header("x-request-id", requestId);
    if (o.apiKey && !(c.req.method === "GET" && c.req.path === "/health") && c.req.method !== "OPTIONS") {
      const auth = c.req.header("authorization") ?? "";
      const token = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() : "";
      if (!constantTimeEqual(token, o.apiKey)) {
        deps.metrics.requests.inc({ endpoint: c.req.path, status: "401" });
        return c.json({ error: { type: "authentication_error", code: "unauthorized", message: "missing or invalid API key (Authorization: Bearer <key>)" } }, 401);
      }
    }
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: o.maxBodyBytes ?? 10 * 1024 * 1024,
      onError: (c) => c.json(errorBody(new RerankError("payload_too_large", `the request body exceeds ${o.maxBodyBytes ?? 10 * 1024 * 1024} bytes`)), 413),
    }),
  );

  const modelName = () => o.modelName ?? deps.service()?.reranker.info.model ?? "qwen3-reranker";

  const checkLimits = (query: string | readonly string[], documents: readonly string[]) => {
    if (documents.length > maxDocuments) throw new RerankError("payload_too_large", `${documents.length} documents exceed the limit of ${maxDocuments} per request`);
    const long = documents.findIndex((d) => d.length > maxChars);
    if (long >= 0) throw new RerankError("payload_too_large", `documents.${long} has ${documents[long]?.length} characters; the limit is ${maxChars}`);
    for (const q of typeof query === "string" ? [query] : query) {
      if (q.length > maxChars) throw new RerankError("payload_too_large", `the query has ${q.length} characters; the limit is ${maxChars}`);
    }
  };

  /** Shared request plumbing: service readiness, JSON parsing, errors, metrics, headers, log line. */
  const handle =
    (endpoint: string, run: (service: RerankService, json: unknown, signal: AbortSignal) => Promise<Handled>) =>
    async (c: Context<Env>): Promise<Response> => {
      const started = performance.now();
      let status = 200;
      let outcome: ServiceOutcome<ServiceResult> | undefined;
      let response: Response;
      try {
        const service = deps.service();
        if (!service) throw new RerankError("engine_unavailable", "the model is still loading");
        let json: unknown;
        try {
          json = await c.req.json();
        } catch {
          throw new ValidationError("the body is not valid JSON");
        }
        const handled = await run(service, json, c.req.raw.signal);
        outcome = handled.outcome;
        if (outcome) {
          c.header("x-queue-time", outcome.queueMs.toFixed(1));
          c.header("x-inference-time", outcome.inferenceMs.toFixed(1));
          if (outcome.language !== undefined) c.header("x-query-language", outcome.language);
          deps.metrics.queueSeconds.observe(outcome.queueMs / 1000);
          deps.metrics.inferenceSeconds.observe(outcome.inferenceMs / 1000);
          for (const r of outcome.results) deps.metrics.scores.observe(r.score);
        }
        lastEngineError = undefined;
        response = c.json(handled.body as object, 200);
      } catch (error) {
        const e = isRerankError(error) ? error : new RerankError("engine_failure", `internal error: ${error instanceof Error ? error.message : String(error)}`);
        status = httpStatusOf[e.code];
        if (e.code === "engine_failure") lastEngineError = e.message;
        if (e instanceof OverloadedError) c.header("retry-after", String(e.retryAfterSeconds));
        response = c.json(errorBody(e), status as 400);
      }
      const ms = performance.now() - started;
      deps.metrics.requests.inc({ endpoint, status: String(status) });
      deps.metrics.requestSeconds.observe({ endpoint }, ms / 1000);
      o.log?.({
        time: new Date().toISOString(),
        request_id: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        status,
        pairs: outcome?.pairs ?? 0,
        tokens: outcome?.tokens ?? 0,
        queue_ms: outcome ? Number(outcome.queueMs.toFixed(1)) : null,
        inference_ms: outcome ? Number(outcome.inferenceMs.toFixed(1)) : null,
        duration_ms: Number(ms.toFixed(1)),
      });
      return response;
    };

  const parse = <S extends z.ZodType>(schema: S, json: unknown): z.infer<S> => parseOrThrow(schema, json);
  // Extension fields of a result: the log-odds when asked for, and the best window of a chunked document.
  const logits = (r: ServiceResult, on: boolean | undefined) => ({ ...(on ? { logit: r.logit } : {}), ...(r.chunk ? { chunk: r.chunk } : {}) });

  // Cohere v1 and Jina.
  app.post(
    "/v1/rerank",
    handle("/v1/rerank", async (service, json, signal) => {
      const b = parse(rerankV1Schema, json);
      const docs = b.documents.map(textOf);
      checkLimits(b.query, docs);
      const outcome = await service.rerank(b.query, docs, { ...knobsOf(b), topN: b.top_n }, signal);
      return {
        outcome,
        body: {
          id: randomUUID(),
          model: b.model ?? modelName(),
          results: outcome.results.map((r) => ({
            index: r.index,
            relevance_score: r.score,
            ...(b.return_documents ? { document: { text: docs[r.index] } } : {}),
            ...logits(r, b.return_logits),
          })),
          usage: { total_tokens: outcome.tokens },
          meta: { api_version: { version: "1" }, billed_units: { search_units: 1 }, ...(outcome.language ? { language: outcome.language } : {}) },
        },
      };
    }),
  );

  // Cohere v2.
  app.post(
    "/v2/rerank",
    handle("/v2/rerank", async (service, json, signal) => {
      const b = parse(rerankV2Schema, json);
      checkLimits(b.query, b.documents);
      const outcome = await service.rerank(b.query, b.documents, { ...knobsOf(b), topN: b.top_n, maxTokensPerDoc: b.max_tokens_per_doc }, signal);
      return {
        outcome,
        body: {
          id: randomUUID(),
          results: outcome.results.map((r) => ({
            index: r.index,
            relevance_score: r.score,
            ...(b.return_documents ? { document: { text: b.documents[r.index] } } : {}),
            ...logits(r, b.return_logits),
          })),
          meta: { api_version: { version: "2" }, billed_units: { search_units: 1 }, ...(outcome.language ? { language: outcome.language } : {}) },
        },
      };
    }),
  );

  // vLLM / Jina shape, or TEI when the body has `texts`.
  app.post(
    "/rerank",
    handle("/rerank", async (service, json, signal) => {
      if (json !== null && typeof json === "object" && "texts" in json) {
        const b = parse(teiRerankSchema, json);
        checkLimits(b.query, b.texts);
        const outcome = await service.rerank(b.query, b.texts, { ...knobsOf(b), refuseTruncation: b.truncate !== true }, signal);
        return {
          outcome,
          body: outcome.results.map((r) => ({
            index: r.index,
            score: b.raw_scores ? r.logit : r.score,
            ...(b.return_text ? { text: b.texts[r.index] } : {}),
            ...logits(r, b.return_logits),
          })),
        };
      }
      const b = parse(rerankV1Schema, json);
      const docs = b.documents.map(textOf);
      checkLimits(b.query, docs);
      const outcome = await service.rerank(b.query, docs, { ...knobsOf(b), topN: b.top_n }, signal);
      const withDocs = b.return_documents ?? true;
      return {
        outcome,
        body: {
          id: randomUUID(),
          model: b.model ?? modelName(),
          usage: { total_tokens: outcome.tokens },
          results: outcome.results.map((r) => ({
            index: r.index,
            relevance_score: r.score,
            ...(withDocs ? { document: { text: docs[r.index] } } : {}),
            ...logits(r, b.return_logits),
          })),
        },
      };
    }),
  );

  // vLLM score API.
  const score = handle("/score", async (service, json, signal) => {
    const b = parse(scoreSchema, json);
    const left = b.text_1 ?? b.queries;
    const right = b.text_2 ?? b.documents;
    if (left === undefined) throw new ValidationError("is required (or `queries`)", "text_1");
    if (right === undefined) throw new ValidationError("is required (or `documents`)", "text_2");
    const queries = typeof left === "string" ? [left] : left;
    const documents = typeof right === "string" ? [right] : right;
    if (queries.length === 0) throw new ValidationError("must not be empty", "text_1");
    queries.forEach((q, i) => {
      if (q.trim().length === 0) throw new ValidationError("must be a non-empty string", `text_1.${i}`);
    });
    checkLimits(queries, documents);
    const outcome = await service.score(queries, documents, knobsOf(b), signal);
    return {
      outcome,
      body: {
        id: `score-${randomUUID()}`,
        object: "list",
        created: Math.floor(Date.now() / 1000),
        model: b.model ?? modelName(),
        data: outcome.results.map((r) => ({ index: r.index, object: "score", score: r.score, ...logits(r, b.return_logits) })),
        usage: { prompt_tokens: outcome.tokens, total_tokens: outcome.tokens },
      },
    };
  });
  app.post("/score", score);
  app.post("/v1/score", score);

  app.get("/health", (c) => {
    const service = deps.service();
    if (!service) return c.json({ status: "loading" }, 503);
    if (lastEngineError) return c.json({ status: "unhealthy", error: lastEngineError }, 503);
    return c.json({ status: "ok", model: modelName(), flavor: service.reranker.info.flavor });
  });
  app.get("/v1/models", (c) =>
    c.json({ object: "list", data: [{ id: modelName(), object: "model", created: 0, owned_by: "qwen-rerank", max_model_len: deps.service()?.reranker.info.maxSequenceLength ?? null }] }),
  );
  app.get("/metrics", async (c) => {
    c.header("content-type", deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });
  app.notFound((c) => c.json({ error: { type: "invalid_request_error", code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((error, c) => {
    const e = isRerankError(error) ? error : new RerankError("engine_failure", `internal error: ${error.message}`);
    return c.json(errorBody(e), httpStatusOf[e.code] as 500);
  });
  return app;
}
