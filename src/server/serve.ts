import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { isCheckpointSource, isUri } from "../engines/llama/model-source.js";
import { RerankError } from "../errors/errors.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { RerankerOptions } from "../compose/stack.js";
import type { SchedulerOptions } from "../scheduler/scheduler.js";
import type { ServerOptions } from "./app.js";
import { createApp } from "./app.js";
import { ServerMetrics } from "./metrics.js";
import type { ModelSpec } from "./model-pool.js";
import { ModelPool } from "./model-pool.js";
import { openServedModel } from "./served-model.js";

export interface StartServerOptions {
  /** The model (`model`) and the options every served model is opened with. */
  reranker: RerankerOptions;
  /**
   * Several models: name -> GGUF path, hf: URI, checkpoint folder or hub id, each opened with `reranker`'s other options; the
   * request's `model` field picks one. The first loads at start, the others on first use.
   * Default: the one model of `reranker.model`, named `server.modelName`.
   */
  models?: Readonly<Record<string, string>> | undefined;
  /** Most models loaded at once (least recently used idle ones unload beyond it). Default: no limit. */
  maxLoadedModels?: number | undefined;
  /** Bytes of weights plus KV cache the loaded models may hold together. Default: no limit. */
  modelsMemoryBytes?: number | undefined;
  server?: ServerOptions | undefined;
  scheduler?: SchedulerOptions | undefined;
  /** Default "127.0.0.1": the server is private unless told otherwise. */
  host?: string | undefined;
  /** Default 8080; 0 picks a free port. */
  port?: number | undefined;
  /** Per-request timeout in milliseconds (wins over `server.requestTimeoutMs`). Default 120000. */
  requestTimeoutMs?: number | undefined;
  /** How long shutdown waits for in-flight requests. Default 30000 ms. */
  shutdownGraceMs?: number | undefined;
  /** Called once the first model is loaded (or failed to load). */
  onReady?: ((error?: unknown) => void) | undefined;
}

export interface RunningServer {
  url: string;
  /** The first model's pipeline once it is loaded (for tools that drive the server in-process). */
  pipeline(): Pipeline | undefined;
  /** The served models. */
  models: ModelPool;
  /** Resolves when the first model is loaded; rejects if loading failed. */
  ready: Promise<void>;
  /** Stops accepting, finishes in-flight requests (bounded), disposes the engines. */
  close(): Promise<void>;
}

/** The name a model is served under when none is given: its file name, or its URI. */
const defaultName = (source: string): string => (isUri(source) ? source : basename(source));

/** The file size of a local model, as a first guess of what it needs (the KV cache comes on top). */
function fileBytes(source: string): number | undefined {
  try {
    const s = statSync(source);
    // A checkpoint folder's size says nothing of its GGUF's: no guess.
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts listening at once (so /health can answer 503 while the first model loads), then loads it.
 * Every request takes its model's pipeline: its log-odds come from the LRU cache (when on), then
 * that model's scheduler, which merges concurrent requests into engine calls.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const named = options.models ?? { [options.server?.modelName ?? defaultName(options.reranker.model)]: options.reranker.model };
  // A model that loads on first use must not wait for its first request to say its file is missing.
  for (const [name, source] of Object.entries(named)) {
    if (!isUri(source) && !isCheckpointSource(source) && !existsSync(source)) throw new RerankError("model_not_found", `model file not found: ${source}${options.models ? ` (model "${name}")` : ""}`);
  }
  const log = options.server?.log;
  // Read at scrape time, when the pool exists.
  const metrics = new ServerMetrics({
    queues: () => models.loaded().map((m) => m.queue()),
    caches: () => models.loaded().flatMap((m) => m.cacheStats() ?? []),
    sharedCaches: () => models.loaded().flatMap((m) => m.sharedCacheStats() ?? []),
    models: () => models.status(),
  });
  const specs: ModelSpec[] = Object.entries(named).map(([name, source]) => ({
    name,
    estimateBytes: fileBytes(source),
    open: () => openServedModel({ name, reranker: { ...options.reranker, model: source }, scheduler: options.scheduler, metrics, log }),
  }));
  const models = new ModelPool(specs, {
    maxLoaded: options.maxLoadedModels,
    memoryBudgetBytes: options.modelsMemoryBytes,
    unloadGraceMs: options.shutdownGraceMs,
    onEvent: (e) => {
      if (e.event === "model_loaded") metrics.modelLoads.inc({ model: e.model, outcome: "loaded" });
      if (e.event === "model_load_failed") metrics.modelLoads.inc({ model: e.model, outcome: "failed" });
      if (e.event === "model_unloaded") metrics.modelUnloads.inc({ model: e.model, reason: e.reason });
      log?.({ time: new Date().toISOString(), ...e });
    },
  });
  let loaded = false;
  const app = createApp({
    models,
    ready: () => loaded,
    metrics,
    options: { ...options.server, requestTimeoutMs: options.requestTimeoutMs ?? options.server?.requestTimeoutMs ?? 120_000 },
  });
  const server = serve({ fetch: app.fetch, hostname: options.host ?? "127.0.0.1", port: options.port ?? 8080 });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  const first = models.names[0] ?? "";
  const ready = (async () => {
    await models.preload(first);
    loaded = true;
  })();
  ready.then(
    () => options.onReady?.(),
    (error: unknown) => options.onReady?.(error),
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const http = server as Server;
      // Stop accepting; idle keep-alive connections would otherwise hold the server open.
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (graceTimer = setTimeout(r, options.shutdownGraceMs ?? 30_000)));
      await ready.catch(() => undefined);
      // Queued work finishes (bounded by the grace), then every engine is freed.
      const unloaded = models.close();
      await Promise.race([unloaded, grace]);
      // Let the last responses go out, then drop whatever is left.
      await new Promise<void>((r) => setTimeout(r, 50));
      http.closeIdleConnections();
      await Promise.race([closed, grace]);
      http.closeAllConnections();
      clearTimeout(graceTimer);
      await unloaded;
    })();
    return closing;
  };
  return { url: `http://${host}:${address.port}`, pipeline: () => models.peek(first).model?.pipeline, models, ready, close };
}
