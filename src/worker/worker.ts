import type { Job } from "bullmq";
import { UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { PreparedPair } from "../pipeline/log-odds.js";
import type { ScoringStack } from "../compose/stack.js";
import { engineIdentity } from "../scoring/logit-cache.js";
import type { ScoringJob, ScoringResult, WorkerAdvert } from "../distributed/queue.js";
import { WORKERS_KEY, WORKER_TIMEOUT_MS, connectionFrom, queueNameFor, workerId } from "../distributed/queue.js";

export interface WorkerOptions {
  /** `redis://HOST:PORT[/DB]` of the queue. */
  url: string;
  /**
   * How long a job's lock lasts without renewal: a worker that dies mid-job has its job taken by
   * another one after about this long. Default 30000 ms.
   */
  lockMs?: number | undefined;
  /** Told of each job (log lines). */
  onJob?: ((event: { event: "job_started" | "job_done" | "job_failed" | "job_stalled"; job: string; pairs?: number; ms?: number; error?: string }) => void) | undefined;
}

/** A job's pairs, checked: a poisoned job fails at once, without retries. */
function pairsOf(data: unknown): PreparedPair[] {
  const pairs = (data as Partial<ScoringJob> | undefined)?.pairs;
  if (!Array.isArray(pairs) || pairs.length === 0) throw new UnrecoverableError("the job has no pairs");
  return pairs.map((p: unknown, i) => {
    const pair = p as Partial<PreparedPair> | null;
    if (!pair || !Array.isArray(pair.tokens) || !pair.tokens.every((t) => Number.isInteger(t) && t >= 0) || !Number.isInteger(pair.headLength)) {
      throw new UnrecoverableError(`pair ${i} of the job is not a list of token ids with a head length`);
    }
    return { tokens: pair.tokens, headLength: pair.headLength ?? 0, truncated: pair.truncated === true };
  });
}

/**
 * A long-running worker: takes the jobs of its model's queue (by content fingerprint and engine
 * settings), scores them with the loaded model, and returns raw log-odds. It advertises itself in
 * Redis with a heartbeat so coordinators can say which models are served.
 */
export async function runWorker(stack: ScoringStack, options: WorkerOptions): Promise<{ name: string; close(graceMs?: number): Promise<boolean> }> {
  const identity = engineIdentity(stack.engine.info);
  const id = workerId();
  const connection = connectionFrom(options.url);
  const lockMs = options.lockMs ?? 30_000;
  const redis = new Redis(connection);
  redis.on("error", () => undefined);
  const advert = (): WorkerAdvert => ({ id, identity, model: stack.engine.info.model, fingerprint: stack.engine.info.fingerprint, host: id.split(":")[0] ?? "", pid: process.pid, seen: Date.now() });
  await redis.hset(WORKERS_KEY, id, JSON.stringify(advert()));
  // Back after a lost connection (Redis restarted empty, perhaps): say at once that this worker is here.
  redis.on("ready", () => void redis.hset(WORKERS_KEY, id, JSON.stringify(advert())).catch(() => undefined));
  const heartbeat = setInterval(() => void redis.hset(WORKERS_KEY, id, JSON.stringify(advert())).catch(() => undefined), Math.min(WORKER_TIMEOUT_MS / 3, 5000));
  const name = queueNameFor(identity);
  // The job in hand, so that a stop can wait for it whatever Redis does.
  let inHand: Promise<unknown> = Promise.resolve();
  const worker = new Worker<ScoringJob, ScoringResult>(
    name,
    (job: Job<ScoringJob, ScoringResult>) => {
      const work = score(job);
      inHand = work.catch(() => undefined);
      return work;
    },
    // One job at a time: the engine scores one call at a time anyway.
    { connection, concurrency: 1, lockDuration: lockMs, stalledInterval: lockMs, maxStalledCount: 2 },
  );
  async function score(job: Job<ScoringJob, ScoringResult>): Promise<ScoringResult> {
    const started = performance.now();
    if (job.data.identity !== identity) throw new UnrecoverableError(`the job is for ${job.data.identity}; this worker holds ${identity}`);
    const pairs = pairsOf(job.data);
    options.onJob?.({ event: "job_started", job: job.id ?? "?", pairs: pairs.length });
    const { logits } = await stack.engineSource.evaluate(pairs);
    options.onJob?.({ event: "job_done", job: job.id ?? "?", pairs: pairs.length, ms: Math.round(performance.now() - started) });
    return { logits: Array.from(logits), worker: id };
  }
  worker.on("error", () => undefined);
  worker.on("failed", (job, error) => options.onJob?.({ event: "job_failed", job: job?.id ?? "?", error: error.message }));
  worker.on("stalled", (jobId) => options.onJob?.({ event: "job_stalled", job: jobId }));
  await worker.waitUntilReady();
  return {
    name,
    close: async (graceMs = 10_000) => {
      clearInterval(heartbeat);
      // Finishes the job in hand, then leaves; BullMQ's close waits for Redis, so once the job is
      // done Redis gets `graceMs` to answer before the connections are cut.
      const closed = worker.close().then(() => true);
      await inHand;
      const timeout = new Promise<false>((r) => setTimeout(() => r(false), graceMs).unref());
      const clean = await Promise.race([closed, timeout]);
      if (clean) await Promise.race([redis.hdel(WORKERS_KEY, id).catch(() => 0), timeout]);
      else void worker.disconnect().catch(() => undefined);
      redis.disconnect();
      return clean;
    },
  };
}
