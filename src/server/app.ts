import type { Context } from "hono";
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bodyLimit } from "hono/body-limit";
import { except } from "hono/combine";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import type { RequestIdVariables } from "hono/request-id";
import { requestId } from "hono/request-id";
import { z } from "zod";
import { RerankError, ValidationError, isRerankError } from "../errors/errors.js";
import { httpStatusOf } from "../errors/status.js";
import type { PipelineResult } from "../pipeline/pipeline.js";
import { describeOmitted } from "../scoring/selection.js";
import { wireOfField } from "../config/knobs.js";
import { PEER_POSTS, addPeerRoutes } from "./peer-routes.js";
import { readJsonBody } from "./request-body.js";
import type { EngineInfo } from "../engines/engine.js";
import { cohereV1, cohereV2, vllmRerank } from "./dialects/cohere.js";
import type { Dialect, DialectCall } from "./dialects/dialect.js";
import { tei } from "./dialects/tei.js";
import { vllmScore } from "./dialects/vllm-score.js";
import { PACKAGE_VERSION } from "../version.js";
import { API_REFERENCE_HTML, apiReferenceScript } from "./api-reference.js";
import { dashboardHtml } from "./dashboard.js";
import type { GetRoute } from "./openapi.js";
import { openApiDocument } from "./openapi.js";
import { errorResponse, unauthorized } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";
import type { ModelLease, ModelPool } from "./model-pool.js";
import type { ServedModel } from "./served-model.js";

/**
 * What answers without the API key: the endpoints that carry no data (probes, the API reference,
 * the dashboard's page shell, which then asks for the key). Everything else needs it.
 */
export const OPEN_WITHOUT_KEY = ["/health", "/ping", "/version", "/docs", "/openapi.json", "/dashboard"] as const;

/** Server limits and switches. */
export interface ServerOptions {
  /** Bearer token required on every endpoint except the data-free GETs of OPEN_WITHOUT_KEY (/health, /ping, /version, /docs, /openapi.json, /dashboard). Default: none (open). */
  apiKey?: string | undefined;
  /** Origins allowed by CORS ("*" for any). Default: none (CORS off). */
  corsOrigins?: string[] | undefined;
  /** Largest request body in bytes. Default 10 MiB. */
  maxBodyBytes?: number | undefined;
  /** Most documents in one request. Default 1000. */
  maxDocuments?: number | undefined;
  /** Most characters in one document (or query). Default 100000. */
  maxDocumentChars?: number | undefined;
  /** Name of the model when one is served (/v1/models, responses). Default: the model's file name, or its hf: URI. */
  modelName?: string | undefined;
  /** Per-request timeout in milliseconds (504 after it). Default: none. */
  requestTimeoutMs?: number | undefined;
  /** Receives one structured line per request. Default: none. */
  log?: ((line: Record<string, unknown>) => void) | undefined;
}

export interface AppDeps {
  /** The served models: requests pick one by their `model` field. */
  models: ModelPool;
  /** False until the first model has loaded (requests and /health answer 503 before). */
  ready(): boolean;
  metrics: ServerMetrics;
  options: ServerOptions;
}

const modelStateSchema = z.enum(["unloaded", "loading", "loaded", "unloading", "failed"]);
const healthSchema = z.object({
  status: z.enum(["ok", "loading", "unhealthy"]),
  model: z.string().optional(),
  flavor: z.string().optional(),
  error: z.string().optional(),
  models: z.array(z.object({ id: z.string(), state: modelStateSchema })).optional().describe("with several models: each one's state"),
});
const engineSchema = z
  .object({
    numerics: z.string(),
    selection: z
      .object({ engine: z.string(), onnx_precision: z.string().nullable(), source: z.enum(["asked", "rule", "measured"]), reason: z.string(), measured_at: z.string() })
      .nullable()
      .describe("which engine runs and why: asked for (--engine), chosen by the default rule, or measured by `doctor --engines`"),
    onnx_engines: z
      .number()
      .int()
      .nullable()
      .describe("the onnx engine: how many engines score a call's pairs side by side, each in a process of its own with one thread (1: one engine of every thread; --onnx-engines); null for llama.cpp"),
    onnx_graphs: z.enum(["cache", "built", "memory"]).nullable().describe("the onnx engine: its graphs loaded from the on-disk cache, built at this start and kept there, or built in memory only; null for llama.cpp"),
    prefix_cache: z
      .object({ capacity_bytes: z.number(), bytes: z.number(), entries: z.number(), hits: z.number(), misses: z.number() })
      .describe("prompt heads kept across calls (--prefix-cache-bytes)"),
  })
  .describe("the engine in use");
const infoSchema = z.object({
  model_id: z.string(),
  model_type: z.object({ reranker: z.object({ id2label: z.record(z.string(), z.string()) }) }),
  model_flavor: z.string(),
  scoring_path: z.string(),
  backend: z.string(),
  max_input_length: z.number().int().describe("the default max_length: tokens of a pair, prompt included"),
  max_context_length: z.number().int(),
  max_client_batch_size: z.number().int().describe("documents per request"),
  max_document_chars: z.number().int(),
  max_body_bytes: z.number().int(),
  max_batch_requests: z.null(),
  max_batch_pairs: z.number().int().nullable(),
  max_batch_tokens: z.number().int().nullable(),
  max_queue_pairs: z.number().int().nullable(),
  version: z.string(),
  engine: engineSchema,
});
/** The engine part of /info and /stats. */
function engineReport(info: EngineInfo): z.input<typeof engineSchema> {
  const s = info.selection;
  const c = info.prefixCache;
  return {
    numerics: info.numerics,
    selection: s ? { engine: s.engine, onnx_precision: s.onnxPrecision ?? null, source: s.source, reason: s.reason, measured_at: s.measuredAt } : null,
    onnx_engines: info.graphs ? (info.memberProcesses?.count ?? 1) : null,
    onnx_graphs: info.graphs ?? null,
    prefix_cache: { capacity_bytes: c.capacityBytes, bytes: c.bytes, entries: c.entries, hits: c.hits, misses: c.misses },
  };
}
const modelsSchema = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      id: z.string(),
      object: z.literal("model"),
      created: z.number(),
      owned_by: z.string(),
      max_model_len: z.number().nullable().describe("null until the model has loaded"),
      state: modelStateSchema.describe("models load on first use and unload least recently used first"),
      memory_bytes: z.number().nullable().describe("weights plus KV cache once loaded; before, the file size"),
      active_requests: z.number().int(),
      last_used: z.number().nullable().describe("Unix seconds"),
      error: z.string().optional().describe("why the last load failed"),
    }),
  ),
});
const statsSchema = z.object({ total_requests: z.number(), avg_latency_ms: z.number(), score_mean: z.number(), current: z.record(z.string(), z.unknown()), adjustments: z.array(z.unknown()), engine: engineSchema }).loose().describe("the monitor's snapshot (docs/monitoring.md lists every field)");

/** The GET routes, for the OpenAPI document. */
const GET_ROUTES: readonly GetRoute[] = [
  { path: "/health", summary: "200 when the model is loaded and the engine healthy, 503 otherwise", body: healthSchema },
  { path: "/ping", summary: "SageMaker's health check: 200 with an empty body when /health would say ok, 503 otherwise", body: "text/plain" },
  { path: "/version", summary: "vLLM's: the server's version", body: z.object({ version: z.string() }) },
  { path: "/info", summary: "the model and the limits a client needs to split its requests (TEI's names plus ours)", body: infoSchema },
  { path: "/v1/models", summary: "the served models and their state", body: modelsSchema },
  { path: "/stats", summary: "the request monitor: latency, throughput, scores, current knobs, adjustments", body: statsSchema },
  { path: "/metrics", summary: "Prometheus metrics", body: "text/plain" },
  { path: "/dashboard", summary: "a live page over /stats with a playground", body: "text/html" },
  { path: "/docs", summary: "this API reference", body: "text/html" },
  { path: "/openapi.json", summary: "this OpenAPI 3.1 document", body: z.object({ openapi: z.string() }).loose() },
];

/**
 * The route table: each POST path and the dialects that answer on it, first claimant first (TEI
 * bodies carry `texts`; every other /rerank body is vLLM's).
 */
const DIALECTS: readonly Dialect[] = [cohereV1, cohereV2, tei, vllmRerank, vllmScore];

type Env = { Variables: RequestIdVariables };

/** The answer headers a browser client may read (CORS): timings, knobs, and what was left out or cut. */
const EXPOSED_HEADERS = ["x-request-id", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-compute-tokens", "x-compute-characters", "x-query-language", "x-temperature", "x-batch-size", "x-omitted-documents", "x-omitted-reason", "x-truncated-documents"];

/** Builds the HTTP app (no listen): middleware, then one route per dialect path over the one pipeline. */
export function createApp(deps: AppDeps): Hono<Env> {
  const o = deps.options;
  const maxDocuments = o.maxDocuments ?? 1000;
  const maxChars = o.maxDocumentChars ?? 100_000;
  const maxBodyBytes = o.maxBodyBytes ?? 10 * 1024 * 1024;
  // strict false: /v1/rerank/ is /v1/rerank, as clients that join a base URL and a path produce it.
  const app = new Hono<Env>({ strict: false });
  let lastEngineError: string | undefined;

  if (o.corsOrigins && o.corsOrigins.length > 0) {
    const origins = o.corsOrigins;
    app.use("*", cors({ origin: origins.includes("*") ? "*" : origins, exposeHeaders: EXPOSED_HEADERS }));
  }
  // A client's own id is echoed when it is short and printable; otherwise a new one is made.
  app.use("*", requestId({ limitLength: 128 }));
  /** The monitor of the model a request named, or of the first model when it named none or one that is not served. */
  const monitorOf = (leased: ServedModel | undefined, requested?: string) => {
    if (leased) return leased.monitor;
    try {
      return deps.models.peek(requested).model?.monitor;
    } catch {
      return deps.models.peek().model?.monitor;
    }
  };
  /** One log line per request, answered or refused. */
  const logRequest = (c: Context<Env>, fields: { status: number; model?: string | null | undefined; outcome?: PipelineResult | undefined; ms: number; error?: string | undefined }) =>
    o.log?.({
      time: new Date().toISOString(),
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      ...(deps.models.single ? {} : { model: fields.model ?? null }),
      status: fields.status,
      pairs: fields.outcome?.pairs ?? 0,
      tokens: fields.outcome?.tokens ?? 0,
      queue_ms: fields.outcome ? Number(fields.outcome.queueMs.toFixed(1)) : null,
      inference_ms: fields.outcome ? Number(fields.outcome.inferenceMs.toFixed(1)) : null,
      duration_ms: Number(fields.ms.toFixed(1)),
      ...(fields.error ? { error: fields.error } : {}),
    });
  /**
   * A request refused before any model saw it (unauthorized, too large, no such route): counted in
   * the metrics and /stats' errors, and logged, like every other. Paths that are no route share one
   * metric label, so that a scanner cannot grow the label set.
   */
  const refused = (c: Context<Env>, status: number, code: string) => {
    const path = c.req.path.replace(/(.)\/$/, "$1");
    const endpoint = app.routes.some((r) => r.path === path && r.method !== "ALL") ? path : "unmatched";
    deps.metrics.requests.inc({ endpoint, status: String(status) });
    monitorOf(undefined)?.recordError(code, 0);
    logRequest(c, { status, ms: 0, error: code });
  };
  if (o.apiKey) {
    const deny = (c: Context<Env>) => {
      refused(c, 401, "unauthorized");
      return unauthorized(c);
    };
    // hono's bearer auth compares in constant time; every failure answers 401 in our error shape.
    const auth = bearerAuth({ token: o.apiKey, noAuthenticationHeader: { message: deny }, invalidAuthenticationHeader: { message: deny }, invalidToken: { message: deny } });
    // Pages and documents without data need no key: the API reference and the dashboard's shell.
    const open = new Set<string>([...OPEN_WITHOUT_KEY, "/docs/rapidoc-min.js"]);
    app.use("*", except((c) => (c.req.method === "GET" && open.has(c.req.path.replace(/(.)\/$/, "$1"))) || c.req.method === "OPTIONS", auth));
  }
  app.use(
    "*",
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) => {
        refused(c as Context<Env>, 413, "payload_too_large");
        return errorResponse(c, new RerankError("payload_too_large", `the request body exceeds ${maxBodyBytes} bytes (the server's --max-body-bytes); split the documents over several requests`));
      },
    }),
  );

  const notReady = () => new RerankError("engine_unavailable", "the model is still loading");
  /** The model a GET endpoint describes: `?model=` or the first; an error when it is not loaded. */
  const described = (c: Context<Env>): { name: string; model: ServedModel } => {
    if (!deps.ready()) throw notReady();
    const { name, model, state } = deps.models.peek(c.req.query("model"));
    if (!model) throw new RerankError("engine_unavailable", `the model "${name}" is ${state}; it loads on its first request`);
    return { name, model };
  };

  const checkLimits = ({ queries, documents }: DialectCall) => {
    if (documents.length > maxDocuments) throw new RerankError("payload_too_large", `${documents.length} documents exceed the limit of ${maxDocuments} per request`);
    const long = documents.findIndex((d) => d.length > maxChars);
    if (long >= 0) throw new RerankError("payload_too_large", `documents.${long} has ${documents[long]?.length} characters; the limit is ${maxChars}`);
    for (const q of queries) if (q.length > maxChars) throw new RerankError("payload_too_large", `the query has ${q.length} characters; the limit is ${maxChars}`);
  };

  /** One request of any dialect: parse, check limits, run the pipeline, answer; metrics and a log line. */
  const handle = (label: string, dialects: readonly Dialect[]) => async (c: Context<Env>): Promise<Response> => {
    const started = performance.now();
    let status = 200;
    let outcome: PipelineResult | undefined;
    let response: Response;
    // Until the body says otherwise, errors take the path's last (default) dialect's shape.
    let dialect = dialects[dialects.length - 1];
    let lease: ModelLease | undefined;
    let requested: string | undefined;
    // The pipeline records what reaches it in the model's monitor; what fails before is recorded here.
    let reachedPipeline = false;
    let failure: string | undefined;
    try {
      if (!deps.ready()) throw notReady();
      const json = await readJsonBody(c.req.raw, maxBodyBytes);
      if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ValidationError(`the body must be a JSON object with the request's fields, not ${Array.isArray(json) ? "an array" : json === null ? "null" : `a ${typeof json}`}`);
      dialect = dialects.find((d) => d.claims?.(json) ?? true) ?? dialect;
      if (!dialect) throw new RerankError("engine_failure", `no dialect answers ${c.req.path}`);
      const { call, respond } = dialect.parse(json);
      requested = call.model;
      checkLimits(call);
      // Waiting for the model (a load, or another model's requests to finish) counts against the timeout.
      const timeoutMs = o.requestTimeoutMs;
      lease = await deps.models.acquire(call.model, timeoutMs === undefined ? c.req.raw.signal : AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(timeoutMs)]));
      const left = timeoutMs === undefined ? undefined : Math.max(1, timeoutMs - (performance.now() - started));
      reachedPipeline = true;
      outcome = await lease.model.pipeline.run({ ...call, signal: c.req.raw.signal, timeoutMs: left });
      const characters = call.queries.reduce((n, q) => n + q.length, 0) + call.documents.reduce((n, d) => n + d.length, 0);
      // TEI's timing and compute headers (milliseconds), the same figures as /metrics.
      c.header("x-total-time", (performance.now() - started).toFixed(1));
      c.header("x-tokenization-time", outcome.tokenizationMs.toFixed(1));
      c.header("x-queue-time", outcome.queueMs.toFixed(1));
      c.header("x-inference-time", outcome.inferenceMs.toFixed(1));
      c.header("x-compute-tokens", String(outcome.tokens));
      c.header("x-compute-characters", String(characters));
      if (outcome.language !== undefined) c.header("x-query-language", outcome.language);
      // What this request ran with, so a client can see adaptive control at work.
      c.header("x-temperature", String(outcome.knobs.temperature));
      c.header("x-batch-size", String(lease.model.limits().maxBatchPairs));
      // Nothing left out or cut silently (docs/server.md, "Nothing changed silently").
      const { topP, threshold, topN } = outcome.omitted;
      c.header("x-omitted-documents", String(topP + threshold + topN));
      const omitted = describeOmitted(outcome.omitted, { topP: outcome.knobs.topP, threshold: outcome.knobs.threshold, topN: call.knobs.topN }, call.documents.length);
      if (omitted) c.header("x-omitted-reason", omitted);
      c.header("x-truncated-documents", String(outcome.results.filter((r) => r.truncated).length));
      deps.metrics.observeRequest(outcome, characters);
      lastEngineError = undefined;
      response = c.json(respond(outcome, lease.name) as object, 200);
    } catch (error) {
      const thrown = isRerankError(error) ? error : new RerankError("engine_failure", `internal error: ${error instanceof Error ? error.message : String(error)}`);
      // The scheduler knows only the time that was left; the caller set the whole timeout.
      const raised =
        thrown.code === "timeout" && o.requestTimeoutMs !== undefined
          ? new RerankError("timeout", `the request did not finish within the server's request timeout of ${o.requestTimeoutMs} ms (${reachedPipeline ? "queued or being scored" : "waiting for its model to load"}); a retry may succeed when the server is less busy`)
          : thrown;
      // A library field ("maxLength") is told by the request body's name for it ("max_length").
      const e = raised instanceof ValidationError ? raised.renamed(wireOfField) : raised;
      if (e.code === "engine_failure") lastEngineError = e.message;
      failure = e.code;
      if (!reachedPipeline) monitorOf(lease?.model, requested)?.recordError(e.code, performance.now() - started);
      const own = dialect?.errorFormat?.(e);
      if (own) {
        status = own.status;
        response = c.json(own.body, own.status as 400);
      } else {
        status = httpStatusOf[e.code];
        response = errorResponse(c, e);
      }
    } finally {
      lease?.release();
    }
    const ms = performance.now() - started;
    deps.metrics.requests.inc({ endpoint: label, status: String(status) });
    deps.metrics.requestSeconds.observe({ endpoint: label }, ms / 1000);
    logRequest(c, { status, model: lease?.name, outcome, ms, error: failure });
    return response;
  };

  const paths = [...new Set(DIALECTS.flatMap((d) => d.paths))];
  for (const path of paths) {
    const dialects = DIALECTS.filter((d) => d.paths.includes(path));
    // Metrics label an endpoint by its dialect's first path (/v1/score counts as /score); a path
    // shared by several dialects by itself.
    app.post(path, handle(dialects.length === 1 ? (dialects[0]?.paths[0] ?? path) : path, dialects));
  }

  app.get("/health", (c) => {
    const models = deps.models.single ? undefined : deps.models.status().map((m) => ({ id: m.name, state: m.state }));
    if (!deps.ready()) return c.json({ status: "loading", ...(models ? { models } : {}) } satisfies z.input<typeof healthSchema>, 503);
    if (lastEngineError) return c.json({ status: "unhealthy", error: lastEngineError }, 503);
    const first = deps.models.peek();
    return c.json({ status: "ok", model: first.name, flavor: first.model?.pipeline.info.flavor, ...(models ? { models } : {}) } satisfies z.input<typeof healthSchema>);
  });
  app.get("/stats", (c) => {
    const { name, model } = described(c);
    if (!model.monitor) return c.json({ error: { type: "invalid_request_error", code: "not_found", message: "monitoring is off (serve without --no-monitor)" } }, 404);
    const q = model.queue();
    return c.json({ model: name, ...model.monitor.snapshot(), queue: { pairs: q.queuedPairs, requests: q.activeRequests }, adjustments: model.adjustments(), engine: engineReport(model.pipeline.info) });
  });
  app.get("/dashboard", (c) => {
    if (deps.models.peek().model && !deps.models.peek().model?.monitor) {
      return c.json({ error: { type: "invalid_request_error", code: "not_found", message: "monitoring is off (serve without --no-monitor): the dashboard shows the monitor" } }, 404);
    }
    // Static HTML without data, so it needs no key; its requests to /stats and /v1/rerank carry one
    // (and the model of `?model=`).
    const { name, model } = deps.models.peek(c.req.query("model"));
    c.header("cache-control", "no-store");
    return c.html(dashboardHtml({ model: name, models: deps.models.names, presets: model?.pipeline.presets.list().map((p) => p.name) ?? [] }));
  });
  // TEI's GET /info, with our own fields beside its names: what a client needs to split requests.
  app.get("/info", (c) => {
    const { name, model } = described(c);
    const info = model.pipeline.info;
    const limits = model.limits();
    return c.json({
      model_id: name,
      model_type: { reranker: { id2label: { "0": "yes" } } },
      model_flavor: info.flavor,
      scoring_path: info.scoringPath,
      backend: info.backend,
      max_input_length: model.pipeline.resolve({}).maxLength,
      max_context_length: info.maxSequenceLength,
      max_client_batch_size: maxDocuments,
      max_document_chars: maxChars,
      max_body_bytes: maxBodyBytes,
      max_batch_requests: null,
      max_batch_pairs: limits.maxBatchPairs,
      max_batch_tokens: limits.maxBatchTokens,
      max_queue_pairs: limits.maxQueuePairs,
      version: PACKAGE_VERSION,
      engine: engineReport(info),
    } satisfies z.input<typeof infoSchema>);
  });
  let openapi: string | undefined;
  app.get("/openapi.json", (c) => {
    openapi ??= JSON.stringify(openApiDocument({ version: PACKAGE_VERSION, dialects: DIALECTS, gets: GET_ROUTES, posts: PEER_POSTS }));
    c.header("content-type", "application/json");
    return c.body(openapi);
  });
  app.get("/docs", (c) => c.html(API_REFERENCE_HTML));
  app.get("/docs/rapidoc-min.js", (c) => {
    c.header("content-type", "text/javascript; charset=utf-8");
    c.header("cache-control", "public, max-age=86400");
    return c.body(apiReferenceScript());
  });
  app.get("/v1/models", (c) => {
    const data = deps.models.status().map((m) => ({
      id: m.name,
      object: "model" as const,
      created: 0,
      owned_by: "qwen-rerank",
      max_model_len: (m.state === "loaded" ? deps.models.peek(m.name).model?.pipeline.info.maxSequenceLength : undefined) ?? null,
      state: m.state,
      memory_bytes: m.bytes ?? null,
      active_requests: m.activeRequests,
      last_used: m.lastUsed === undefined ? null : Math.floor(m.lastUsed / 1000),
      ...(m.error !== undefined ? { error: m.error } : {}),
    }));
    return c.json({ object: "list", data } satisfies z.input<typeof modelsSchema>);
  });
  app.get("/metrics", async (c) => {
    c.header("content-type", deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });
  addPeerRoutes(app, {
    healthy: () => deps.ready() && !lastEngineError,
    json: (request) => readJsonBody(request, maxBodyBytes),
    planner: async (model) => {
      if (!deps.ready()) throw notReady();
      const lease = await deps.models.acquire(model);
      return { planner: lease.model.pipeline.planner, maxModelLength: lease.model.pipeline.info.maxSequenceLength, release: () => lease.release() };
    },
  });

  // A path that exists for another method answers 405 with the methods it takes, not 404.
  const methodsOf = (path: string) => [...new Set(app.routes.filter((r) => r.path === path && r.method !== "ALL").map((r) => r.method))];
  app.notFound((c) => {
    const allowed = methodsOf(c.req.path.replace(/(.)\/$/, "$1"));
    if (allowed.length > 0) {
      refused(c, 405, "method_not_allowed");
      c.header("allow", allowed.join(", "));
      return c.json({ error: { type: "invalid_request_error", code: "method_not_allowed", message: `${c.req.path} takes ${allowed.join(" or ")}, not ${c.req.method}` } }, 405);
    }
    refused(c, 404, "not_found");
    return c.json({ error: { type: "invalid_request_error", code: "not_found", message: `no route for ${c.req.method} ${c.req.path} (GET /docs lists them)` } }, 404);
  });
  app.onError((error, c) => {
    // Middleware answers (bearer auth) arrive as HTTPExceptions carrying their response.
    if (error instanceof HTTPException) return error.getResponse();
    const raised = isRerankError(error) ? error : new RerankError("engine_failure", `internal error: ${error.message}`);
    const e = raised instanceof ValidationError ? raised.renamed(wireOfField) : raised;
    refused(c, httpStatusOf[e.code], e.code);
    return errorResponse(c, e);
  });
  return app;
}
