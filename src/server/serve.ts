import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Adjustment } from "../monitor/adjustments.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { RerankerOptions, ScoringStack } from "../pipeline/stack.js";
import { openStack } from "../pipeline/stack.js";
import type { SchedulerOptions } from "../scheduler/scheduler.js";
import { Scheduler } from "../scheduler/scheduler.js";
import type { ServerOptions } from "./app.js";
import { createApp } from "./app.js";
import { ServerMetrics } from "./metrics.js";

export interface StartServerOptions {
  reranker: RerankerOptions;
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
  /** Called once the model is loaded (or failed to load). */
  onReady?: ((error?: unknown) => void) | undefined;
}

export interface RunningServer {
  url: string;
  /** The server's pipeline once the model is loaded (for tools that drive the server in-process). */
  pipeline(): Pipeline | undefined;
  /** Resolves when the model is loaded; rejects if loading failed. */
  ready: Promise<void>;
  /** Stops accepting, finishes in-flight requests (bounded), disposes the engine. */
  close(): Promise<void>;
}

/**
 * Starts listening at once (so /health can answer 503 while the model loads), then loads the
 * model. Every request takes the one pipeline: its log-odds come from the LRU cache (when on), then
 * the scheduler, which merges concurrent requests into engine calls.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  let pipeline: Pipeline | undefined;
  let stack: ScoringStack | undefined;
  let scheduler: Scheduler | undefined;
  const metrics = new ServerMetrics(
    () => scheduler?.state,
    () => stack?.cache?.stats,
  );
  const app = createApp({
    pipeline: () => pipeline,
    monitor: () => stack?.monitor,
    adjustments: () => stack?.adjustments.list ?? [],
    batchSize: () => scheduler?.limits.maxBatchPairs,
    queue: () => scheduler?.state,
    schedulerLimits: () => scheduler?.limits,
    metrics, options: { ...options.server, requestTimeoutMs: options.requestTimeoutMs ?? options.server?.requestTimeoutMs ?? 120_000 } });
  const server = serve({ fetch: app.fetch, hostname: options.host ?? "127.0.0.1", port: options.port ?? 8080 });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  const ready = (async () => {
    const loaded = await openStack(options.reranker);
    stack = loaded;
    scheduler = new Scheduler(stack.engineSource, options.scheduler);
    scheduler.onBatch = (b) => metrics.observeBatch(b);
    const served = stack.pipeline.withSource(stack.cached(scheduler));
    pipeline = served;
    const batches = scheduler;
    stack.attachBatchSize({ get: () => batches.limits.maxBatchPairs, set: (pairs) => batches.setMaxBatchPairs(pairs) });
    const log = options.server?.log;
    const announce = (a: Adjustment) => {
      metrics.adjustments.inc({ knob: a.knob });
      log?.({ event: "adjustment", ...a });
      if (a.knob === "sequences") metrics.setEngine(loaded.engine.info, served.resolve({}).maxLength);
    };
    // Back-offs made while the model loaded happened before anyone listened.
    for (const a of stack.adjustments.list) announce(a);
    stack.adjustments.onAdjust(announce);
    metrics.setEngine(stack.engine.info, pipeline.resolve({}).maxLength);
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
      if (scheduler) await Promise.race([scheduler.drain(), grace]);
      // Let the last responses go out, then drop whatever is left.
      await new Promise<void>((r) => setTimeout(r, 50));
      http.closeIdleConnections();
      await Promise.race([closed, grace]);
      http.closeAllConnections();
      clearTimeout(graceTimer);
      await ready.catch(() => undefined);
      await stack?.dispose();
    })();
    return closing;
  };
  return { url: `http://${host}:${address.port}`, pipeline: () => pipeline, ready, close };
}
