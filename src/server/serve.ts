import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { RerankerOptions } from "../reranker.js";
import { createReranker } from "../reranker.js";
import type { Reranker } from "../reranker.js";
import type { SchedulerOptions } from "../scheduler/scheduler.js";
import { Scheduler } from "../scheduler/scheduler.js";
import type { ServerOptions } from "./app.js";
import { createApp } from "./app.js";
import { ServerMetrics } from "./metrics.js";
import { RerankService } from "./service.js";

export interface StartServerOptions {
  reranker: RerankerOptions;
  server?: ServerOptions | undefined;
  scheduler?: SchedulerOptions | undefined;
  /** Default "127.0.0.1": the server is private unless told otherwise. */
  host?: string | undefined;
  /** Default 8080; 0 picks a free port. */
  port?: number | undefined;
  /** Per-request timeout in milliseconds. Default 120000. */
  requestTimeoutMs?: number | undefined;
  /** How long shutdown waits for in-flight requests. Default 30000 ms. */
  shutdownGraceMs?: number | undefined;
  /** Called once the model is loaded (or failed to load). */
  onReady?: ((error?: unknown) => void) | undefined;
}

export interface RunningServer {
  url: string;
  /** The service once the model is loaded (for tools that drive the server in-process). */
  service(): RerankService | undefined;
  /** Resolves when the model is loaded; rejects if loading failed. */
  ready: Promise<void>;
  /** Stops accepting, finishes in-flight requests (bounded), disposes the engine. */
  close(): Promise<void>;
}

/**
 * Starts listening at once (so /health can answer 503 while the model loads), then loads the
 * model. Everything model-related goes through one Reranker and one Scheduler.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  let service: RerankService | undefined;
  let reranker: Reranker | undefined;
  let scheduler: Scheduler | undefined;
  const metrics = new ServerMetrics(
    () => scheduler?.state,
    () => reranker?.cacheStats,
  );
  const app = createApp({ service: () => service, metrics, options: options.server ?? {} });
  const server = serve({ fetch: app.fetch, hostname: options.host ?? "127.0.0.1", port: options.port ?? 8080 });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  const ready = (async () => {
    reranker = await createReranker(options.reranker);
    scheduler = new Scheduler(reranker, options.scheduler);
    scheduler.onBatch = (b) => metrics.observeBatch(b);
    metrics.setEngine(reranker.info, reranker.resolveOptions({}).maxLength);
    service = new RerankService(reranker, scheduler, options.requestTimeoutMs ?? 120_000);
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
      await reranker?.dispose();
    })();
    return closing;
  };
  return { url: `http://${host}:${address.port}`, service: () => service, ready, close };
}
