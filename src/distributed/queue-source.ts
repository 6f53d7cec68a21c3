import { randomUUID } from "node:crypto";
import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { RerankError } from "../errors/errors.js";
import type { LogOdds, LogOddsOptions, LogOddsSource, PreparedPair } from "../pipeline/log-odds.js";
import type { ScoringJob, ScoringResult } from "./queue.js";
import { connectionFrom, liveWorkers, queueNameFor } from "./queue.js";

/** Distributed scoring: where the jobs go and how big they are. */
export interface QueueOptions {
  /** `redis://HOST:PORT[/DB]` of the BullMQ queue the workers listen on. */
  url: string;
  /** Most pairs in one job. Default 32. */
  jobPairs?: number | undefined;
  /** Most prompt tokens in one job. Default 16384. */
  jobTokens?: number | undefined;
  /** Tries of a job before the run fails with its error (a worker that dies mid-job does not count). Default 3. */
  attempts?: number | undefined;
  /** How long the run waits with no live worker for its model (or no Redis) before it fails. Default 60000 ms. */
  noWorkerTimeoutMs?: number | undefined;
}

/** Cuts pairs into jobs of at most `maxPairs` pairs and `maxTokens` tokens (a longer pair is a job alone). */
export function splitIntoJobs(pairs: readonly PreparedPair[], maxPairs: number, maxTokens: number): number[][] {
  const jobs: number[][] = [];
  let current: number[] = [];
  let tokens = 0;
  pairs.forEach((p, i) => {
    if (current.length > 0 && (current.length >= maxPairs || tokens + p.tokens.length > maxTokens)) {
      jobs.push(current);
      current = [];
      tokens = 0;
    }
    current.push(i);
    tokens += p.tokens.length;
  });
  if (current.length > 0) jobs.push(current);
  return jobs;
}

/**
 * The coordinator's engine: instead of scoring, it splits the pairs into BullMQ jobs for the
 * workers that hold the same model and engine settings, and collects their log-odds. A worker
 * that dies mid-job has its job retried elsewhere (BullMQ's stalled-job check); a job that fails
 * `attempts` times ends the call with its error; no live worker for `noWorkerTimeoutMs` ends it
 * with the workers that are there.
 */
export class QueueSource implements LogOddsSource {
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly redis: Redis;
  private readonly name: string;
  /** Times Redis came back after a lost connection: each call's watchdog then looks for its lost jobs. */
  private reconnections = 0;
  /** BullMQ's own connections, to cut when Redis is gone at close (its close waits for Redis). */
  private readonly client: Redis;
  /** 64 jobs a call, two calls in flight (scoreSet): enough queued work for 128 workers' next job. */
  readonly preferredCallPairs: number;

  constructor(
    private readonly identity: string,
    private readonly modelName: string,
    private readonly options: QueueOptions,
  ) {
    const connection = connectionFrom(options.url);
    this.name = queueNameFor(identity);
    this.preferredCallPairs = 64 * (options.jobPairs ?? 32);
    // Our own client, so that a close with Redis gone can cut it (BullMQ's close waits for Redis).
    this.client = new Redis(connection);
    this.queue = new Queue(this.name, { connection: this.client });
    // QueueEvents reads with a blocking command: it keeps a connection of its own.
    this.events = new QueueEvents(this.name, { connection });
    // The watchdog's questions must come back (an answer or an error) at once while Redis is gone.
    this.redis = new Redis({ ...connection, commandTimeout: 1000, enableOfflineQueue: false });
    // Connection trouble shows as the watchdog's "Redis does not answer", not as unhandled events.
    this.queue.on("error", () => undefined);
    this.events.on("error", () => undefined);
    for (const client of [this.redis, this.client]) client.on("error", () => undefined);
    let connections = 0;
    this.redis.on("ready", () => {
      if (++connections > 1) this.reconnections++;
    });
  }

  async evaluate(pairs: readonly PreparedPair[], options: LogOddsOptions = {}): Promise<LogOdds> {
    const started = performance.now();
    const logits = new Float64Array(pairs.length);
    if (pairs.length === 0) return { logits, stats: { evaluatedTokens: 0, pairTokens: 0 }, cached: 0, queueMs: 0, inferenceMs: 0 };
    await this.events.waitUntilReady();
    await this.requireWorker();
    const { signal } = options;
    if (signal?.aborted) throw new RerankError("cancelled", "cancelled");
    const pending = new Map<string, number[]>();
    // Completions heard before addBulk told this job's id (a fast worker).
    const early = new Map<string, unknown>();
    let done = 0;
    let ended = false;
    let settle: (error?: RerankError) => void = () => undefined;
    const settled = new Promise<void>((resolve, reject) => {
      settle = (error) => {
        if (ended) return;
        ended = true;
        if (error) reject(error);
        else resolve();
      };
    });
    const onCompleted = ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
      const indices = pending.get(jobId);
      if (!indices) {
        early.set(jobId, returnvalue);
        return;
      }
      pending.delete(jobId);
      const result = (typeof returnvalue === "string" ? JSON.parse(returnvalue) : returnvalue) as ScoringResult;
      indices.forEach((i, k) => (logits[i] = result.logits[k] ?? Number.NaN));
      done += indices.length;
      options.onValues?.(indices, result.logits);
      options.onProgress?.(done, pairs.length);
      if (pending.size === 0) settle();
    };
    const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) => {
      if (!pending.has(jobId)) return;
      // "failed" is also told of an attempt that will be retried: only the job's final state ends the run.
      void this.queue.getJobState(jobId).then((state) => {
        if (state === "failed") settle(new RerankError("engine_failure", `a scoring job failed on the workers: ${failedReason}`));
      });
    };
    const enqueue = async (batches: number[][]) => {
      const jobs = await this.queue.addBulk(
        batches.map((indices) => ({
          name: "score",
          data: { identity: this.identity, pairs: indices.map((i) => pairs[i] as PreparedPair).map((p) => ({ tokens: p.tokens, headLength: p.headLength, truncated: p.truncated })) } satisfies ScoringJob,
          // An id of our own: BullMQ's counter starts again at 1 when Redis restarts empty, and a new
          // job "1" would then take the results meant for this call's lost job "1".
          opts: { jobId: randomUUID(), attempts: this.options.attempts ?? 3, backoff: { type: "exponential", delay: 500 }, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
        })),
      );
      jobs.forEach((job, k) => {
        if (job.id !== undefined) pending.set(job.id, batches[k] ?? []);
      });
      for (const [jobId, returnvalue] of early) if (pending.has(jobId)) onCompleted({ jobId, returnvalue });
    };
    // Ctrl-C leaves the queue clean: the jobs no worker has started are removed before the call
    // ends (a running one finishes unseen; its pairs are scored again by the next run).
    const onAbort = () => {
      void Promise.all([...pending.keys()].map((id) => this.queue.remove(id).catch(() => 0))).finally(() => settle(new RerankError("cancelled", "cancelled")));
    };
    let lonelySince: number | undefined;
    let checking = false;
    let reconnectionsSeen = this.reconnections;
    const watch = async () => {
      const problem = await this.workerCheck();
      if (!problem) {
        lonelySince = undefined;
        // Redis restarted without its data: the jobs it lost are queued again (a pair scored twice changes nothing).
        if (this.reconnections !== reconnectionsSeen) {
          reconnectionsSeen = this.reconnections;
          await this.requeueLost(pending, enqueue);
        }
        return;
      }
      lonelySince ??= Date.now();
      const waited = Date.now() - lonelySince;
      if (waited > (this.options.noWorkerTimeoutMs ?? 60_000)) settle(new RerankError("engine_unavailable", `${problem} for ${Math.round(waited / 1000)} s; ${done} of ${pairs.length} pairs scored`));
    };
    const watchdog = setInterval(() => {
      if (checking) return;
      checking = true;
      void watch()
        .catch(() => undefined)
        .finally(() => (checking = false));
    }, 2000);
    this.events.on("completed", onCompleted);
    this.events.on("failed", onFailed);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // While Redis is gone adding waits; the watchdog's time limit still ends the call.
      const added = enqueue(splitIntoJobs(pairs, this.options.jobPairs ?? 32, this.options.jobTokens ?? 16_384)).then(
        // Aborted while the jobs were being added: they are in `pending` now, and go too.
        () => (signal?.aborted ? onAbort() : undefined),
        (error: Error) => settle(new RerankError("engine_unavailable", `could not queue the jobs: ${error.message}`)),
      );
      await Promise.race([added, settled]);
      await settled;
    } finally {
      this.events.off("completed", onCompleted);
      this.events.off("failed", onFailed);
      clearInterval(watchdog);
      signal?.removeEventListener("abort", onAbort);
    }
    const pairTokens = pairs.reduce((n, p) => n + p.tokens.length, 0);
    return { logits, stats: { evaluatedTokens: pairTokens, pairTokens }, cached: 0, queueMs: 0, inferenceMs: performance.now() - started };
  }

  /** Jobs of this call that Redis no longer knows (it restarted empty) are queued again. */
  private async requeueLost(pending: Map<string, number[]>, enqueue: (batches: number[][]) => Promise<void>): Promise<void> {
    const lost: number[][] = [];
    for (const [id, indices] of [...pending]) {
      if ((await this.queue.getJobState(id)) !== "unknown") continue;
      pending.delete(id);
      lost.push(indices);
    }
    if (lost.length > 0) await enqueue(lost);
  }

  async close(): Promise<void> {
    // A clean close waits on Redis; with Redis gone, it would wait forever: then the clients are cut.
    const closed = Promise.allSettled([this.queue.close(), this.events.close()]);
    if ((await Promise.race([closed.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1000).unref())])) === false) {
      void this.events.disconnect().catch(() => undefined);
    }
    // The queue's client is ours (BullMQ does not close a client it was given).
    this.client.disconnect();
    this.redis.disconnect();
  }

  /** Fails at once when no live worker holds this model (naming those that are there). */
  private async requireWorker(): Promise<void> {
    // The watchdog's client queues nothing while it connects: wait for it (Redis answered moments ago, in checkRedis).
    if (this.redis.status !== "ready") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        this.redis.once("ready", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const problem = await this.workerCheck();
    if (problem) throw new RerankError("engine_unavailable", problem);
  }

  /** What is wrong with the workers, or undefined when one holds this model. */
  private async workerCheck(): Promise<string | undefined> {
    let workers;
    try {
      workers = await liveWorkers(this.redis);
    } catch (error) {
      return `Redis does not answer (${(error as Error).message})`;
    }
    if (workers.some((w) => w.identity === this.identity)) return undefined;
    const others = workers.map((w) => `${w.id} holds ${w.model} (${w.identity})`).join("; ");
    return `no live worker holds ${this.modelName} with these engine settings (${this.identity})${others ? `; workers online: ${others}` : "; no worker is online"}: start one with \`qwen-rerank worker --queue URL --model ${this.modelName}\` and the same engine flags`;
  }
}
