import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type { RedisOptions } from "ioredis";
import { Redis } from "ioredis";
import { RerankError } from "../errors/errors.js";
import { parseRedisUrl } from "../scoring/redis-url.js";

/** What travels in a job: the pairs' prompt tokens, and the engine identity the bits must come from. */
export interface ScoringJob {
  identity: string;
  pairs: Array<{ tokens: number[]; headLength: number; truncated: boolean }>;
}

/** What a job returns: one raw log-odds per pair (JSON keeps a double's exact bits). */
export interface ScoringResult {
  logits: number[];
  worker: string;
}

/** A worker as it advertises itself in Redis. */
export interface WorkerAdvert {
  id: string;
  identity: string;
  model: string;
  fingerprint: string;
  host: string;
  pid: number;
  /** Milliseconds since the epoch of the last heartbeat. */
  seen: number;
}

/** The Redis hash of live workers (field: worker id). */
export const WORKERS_KEY = "qwen-rerank:workers";
/** A worker whose heartbeat is older than this is gone. */
export const WORKER_TIMEOUT_MS = 15_000;

/**
 * The queue of one model and engine setting: jobs reach only workers whose model file (by content
 * fingerprint, not path) and numerics are the coordinator's, so every pair gets the same bits.
 */
export const queueNameFor = (identity: string): string => `qwen-rerank-${createHash("sha256").update(identity).digest("hex").slice(0, 16)}`;

export const workerId = (): string => `${hostname()}:${process.pid}`;

/** ioredis options from a redis:// URL, as BullMQ wants them (blocking commands must not give up). */
export function connectionFrom(url: string): RedisOptions {
  const u = parseRedisUrl(url, "queue");
  const db = u.pathname.replace(/^\//, "");
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    db: db === "" ? 0 : Number(db),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === "rediss:" ? {} : undefined,
    maxRetriesPerRequest: null,
    // Redis lost mid-run: reconnect, backing off to one try every 2 s (a try costs Redis nothing).
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
}

/** Connects once to say clearly that Redis is unreachable, instead of waiting on it forever. */
export async function checkRedis(url: string): Promise<void> {
  const options = connectionFrom(url);
  const redis = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 });
  // The socket's own error (ECONNREFUSED, a DNS failure) says more than "Connection is closed".
  let cause: string | undefined;
  redis.on("error", (error: Error) => (cause ??= error.message));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new RerankError("engine_unavailable", `cannot reach Redis at ${options.host ?? "?"}:${options.port ?? "?"}: ${cause ?? (error as Error).message}`);
  } finally {
    redis.disconnect();
  }
}

/** The workers whose heartbeat is recent. */
export async function liveWorkers(redis: Redis): Promise<WorkerAdvert[]> {
  const all = await redis.hgetall(WORKERS_KEY);
  const now = Date.now();
  return Object.values(all)
    .map((v) => JSON.parse(v) as WorkerAdvert)
    .filter((w) => now - w.seen < WORKER_TIMEOUT_MS);
}
