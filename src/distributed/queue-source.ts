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

  constructor(
    private readonly identity: string,
    private readonly modelName: string,
    private readonly options: QueueOptions,
  ) {
    const connection = connectionFrom(options.url);
    this.name = queueNameFor(identity);
    this.queue = new Queue(this.name, { connection });
    this.events = new QueueEvents(this.name, { connection });
    this.redis = new Redis(connection);
    // Connection trouble shows as the watchdog's "Redis does not answer", not as unhandled events.
    this.queue.on("error", () => undefined);
    this.events.on("error", () => undefined);
    this.redis.on("error", () => undefined);
  }

  async evaluate(pairs: readonly PreparedPair[], options: LogOddsOptions = {}): Promise<LogOdds> {
    const started = performance.now();
    const logits = new Float64Array(pairs.length);
    if (pairs.length === 0) return { logits, stats: { evaluatedTokens: 0, pairTokens: 0 }, cached: 0, queueMs: 0, inferenceMs: 0 };
    await this.events.waitUntilReady();
    await this.requireWorker();
    const chunks = splitIntoJobs(pairs, this.options.jobPairs ?? 32, this.options.jobTokens ?? 16_384);
    const pending = new Map<string, number[]>();
    // Completions heard before addBulk told this job's id (a fast worker).
    const early = new Map<string, unknown>();
    let accept: (jobId: string, returnvalue: unknown) => void = () => undefined;
    let done = 0;
    const settled = new Promise<void>((resolve, reject) => {
      const finish = (error?: RerankError) => {
        this.events.off("completed", onCompleted);
        this.events.off("failed", onFailed);
        clearInterval(watchdog);
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve();
      };
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
        options.onProgress?.(done, pairs.length);
        if (pending.size === 0) finish();
      };
      const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) => {
        if (!pending.has(jobId)) return;
        // "failed" is also told of an attempt that will be retried: only the job's final state ends the run.
        void this.queue.getJobState(jobId).then((state) => {
          if (state === "failed") finish(new RerankError("engine_failure", `a scoring job failed on the workers: ${failedReason}`));
        });
      };
      const onAbort = () => {
        // Ctrl-C leaves the queue clean: jobs not started are removed; a running one finishes unseen.
        void Promise.all([...pending.keys()].map((id) => this.queue.remove(id).catch(() => 0)));
        finish(new RerankError("cancelled", "cancelled"));
      };
      let lonelySince: number | undefined;
      const watchdog = setInterval(() => {
        void this.workerCheck().then((problem) => {
          if (!problem) {
            lonelySince = undefined;
            return;
          }
          lonelySince ??= Date.now();
          if (Date.now() - lonelySince > (this.options.noWorkerTimeoutMs ?? 60_000)) finish(new RerankError("engine_unavailable", `${problem}; ${done} of ${pairs.length} pairs scored`));
        });
      }, 2000);
      accept = (jobId, returnvalue) => onCompleted({ jobId, returnvalue });
      this.events.on("completed", onCompleted);
      this.events.on("failed", onFailed);
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
    const jobs = await this.queue.addBulk(
      chunks.map((indices) => ({
        name: "score",
        data: { identity: this.identity, pairs: indices.map((i) => pairs[i] as PreparedPair).map((p) => ({ tokens: p.tokens, headLength: p.headLength, truncated: p.truncated })) } satisfies ScoringJob,
        opts: { attempts: this.options.attempts ?? 3, backoff: { type: "exponential", delay: 500 }, removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } },
      })),
    );
    jobs.forEach((job, k) => {
      if (job.id !== undefined) pending.set(job.id, chunks[k] ?? []);
    });
    for (const [jobId, returnvalue] of early) if (pending.has(jobId)) accept(jobId, returnvalue);
    await settled;
    const pairTokens = pairs.reduce((n, p) => n + p.tokens.length, 0);
    return { logits, stats: { evaluatedTokens: pairTokens, pairTokens }, cached: 0, queueMs: 0, inferenceMs: performance.now() - started };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.events.close()]);
    this.redis.disconnect();
  }

  /** Fails at once when no live worker holds this model (naming those that are there). */
  private async requireWorker(): Promise<void> {
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
