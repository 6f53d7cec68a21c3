import { OverloadedError, RerankError } from "../errors/errors.js";
import type { ScoreStats } from "../engines/engine.js";
import type { LogOdds, LogOddsOptions, LogOddsSource, PreparedPair } from "../pipeline/log-odds.js";

/** Scheduler limits. */
export interface SchedulerOptions {
  /** Most pairs in one engine call (pairs of several requests are merged). Default 64. */
  maxBatchPairs?: number | undefined;
  /** Most tokens in one engine call. Default 32768. */
  maxBatchTokens?: number | undefined;
  /** Most pairs waiting; more is refused with an Overloaded error. Default 10000. */
  maxQueuePairs?: number | undefined;
}


interface Job {
  pairs: readonly PreparedPair[];
  next: number;
  done: number;
  logits: Float64Array;
  stats: ScoreStats;
  cached: number;
  submittedAt: number;
  startedAt: number | undefined;
  settled: boolean;
  resolve(r: LogOdds): void;
  reject(e: unknown): void;
  cleanup(): void;
}

/** What a batch holds: which pairs of which job. */
interface Slice {
  job: Job;
  from: number;
  to: number;
}

/** What one engine call did (for metrics). */
export interface BatchInfo {
  pairs: number;
  tokens: number;
  evaluatedTokens: number;
  requests: number;
  ms: number;
  error?: unknown;
}

/** A snapshot for metrics. */
export interface SchedulerState {
  queuedPairs: number;
  activeRequests: number;
}

/**
 * A log-odds source in front of another (the engine): merges the pairs of concurrent requests
 * into calls bounded by pairs and tokens, takes a fair share from every waiting request per batch,
 * drops the pending pairs of requests that are cancelled or time out, and refuses work when its
 * queue is full. One call runs at a time; when a merged call fails, each of its requests is tried
 * again alone, so a failure fails only the request it belongs to. A
 * pair's log-odds do not depend on the batch it lands in (docs/architecture.md, "Determinism").
 */
export class Scheduler implements LogOddsSource {
  private readonly jobs: Job[] = [];
  private running = false;
  private maxBatchPairs: number;
  private readonly maxBatchTokens: number;
  private readonly maxQueuePairs: number;
  /** Called after every engine call (for metrics). */
  onBatch?: (info: BatchInfo) => void;

  constructor(
    private readonly inner: LogOddsSource,
    options: SchedulerOptions = {},
  ) {
    this.maxBatchPairs = options.maxBatchPairs ?? 64;
    this.maxBatchTokens = options.maxBatchTokens ?? 32768;
    this.maxQueuePairs = options.maxQueuePairs ?? 10000;
  }

  /** Changes the most pairs of one engine call from the next batch on (adaptive control). */
  setMaxBatchPairs(pairs: number): void {
    this.maxBatchPairs = Math.max(1, Math.floor(pairs));
  }

  /** The most pairs and tokens in one engine call. */
  get limits(): { maxBatchPairs: number; maxBatchTokens: number; maxQueuePairs: number } {
    return { maxBatchPairs: this.maxBatchPairs, maxBatchTokens: this.maxBatchTokens, maxQueuePairs: this.maxQueuePairs };
  }

  get state(): SchedulerState {
    return { queuedPairs: this.queuedPairs(), activeRequests: this.jobs.length };
  }

  private queuedPairs(): number {
    return this.jobs.reduce((n, j) => n + (j.pairs.length - j.next), 0);
  }

  /** Queues the pairs of one request; resolves when all are scored. `onProgress` is not reported. */
  evaluate(pairs: readonly PreparedPair[], options: LogOddsOptions = {}): Promise<LogOdds> {
    if (options.signal?.aborted) return Promise.reject(new RerankError("cancelled", "the request was cancelled"));
    if (pairs.length === 0) return Promise.resolve({ logits: new Float64Array(0), stats: { evaluatedTokens: 0, pairTokens: 0 }, cached: 0, queueMs: 0, inferenceMs: 0 });
    const queued = this.queuedPairs();
    if (queued + pairs.length > this.maxQueuePairs) {
      // A rough wait estimate: the queue drains at about one batch per second on a small CPU.
      const retry = Math.max(1, Math.ceil(queued / this.maxBatchPairs));
      return Promise.reject(new OverloadedError(`the queue is full (${queued} pairs waiting, limit ${this.maxQueuePairs})`, retry));
    }
    return new Promise<LogOdds>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => this.fail(job, new RerankError("cancelled", "the request was cancelled"));
      const job: Job = {
        pairs,
        next: 0,
        done: 0,
        logits: new Float64Array(pairs.length),
        stats: { evaluatedTokens: 0, pairTokens: 0 },
        cached: 0,
        submittedAt: performance.now(),
        startedAt: undefined,
        settled: false,
        resolve,
        reject,
        cleanup: () => {
          if (timer) clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => this.fail(job, new RerankError("timeout", `the request did not finish within ${Math.round(options.timeoutMs ?? 0)} ms (the request timeout); a retry may succeed when the server is less busy`)), options.timeoutMs);
      }
      this.jobs.push(job);
      this.pump();
    });
  }

  /** Settles a job with an error and drops its pending pairs; pairs already in a batch finish unseen. */
  private fail(job: Job, error: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.cleanup();
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
    job.reject(error);
  }

  private takeBatch(): Slice[] {
    const slices: Slice[] = [];
    let pairs = 0;
    let tokens = 0;
    const waiting = this.jobs.filter((j) => j.next < j.pairs.length);
    // Fair share: every waiting request gets a turn in each batch; leftovers go in FIFO order.
    const share = Math.max(1, Math.ceil(this.maxBatchPairs / Math.max(1, waiting.length)));
    for (const pass of [share, Number.POSITIVE_INFINITY]) {
      for (const job of waiting) {
        const start = job.next;
        let end = start;
        while (end < job.pairs.length && end - start < pass && pairs < this.maxBatchPairs) {
          const n = job.pairs[end]?.tokens.length ?? 0;
          if (pairs > 0 && tokens + n > this.maxBatchTokens) break;
          tokens += n;
          pairs++;
          end++;
        }
        if (end > start) {
          const last = slices.find((s) => s.job === job && s.to === start);
          if (last) last.to = end;
          else slices.push({ job, from: start, to: end });
          job.next = end;
        }
      }
    }
    return slices;
  }

  private pump(): void {
    if (this.running) return;
    const slices = this.takeBatch();
    if (slices.length === 0) return;
    this.running = true;
    void this.runBatch(slices).finally(() => {
      this.running = false;
      this.pump();
    });
  }

  private async runBatch(slices: Slice[]): Promise<void> {
    const started = performance.now();
    for (const s of slices) s.job.startedAt ??= started;
    const pairs = slices.flatMap((s) => s.job.pairs.slice(s.from, s.to));
    const tokens = pairs.reduce((n, p) => n + p.tokens.length, 0);
    const requests = new Set(slices.map((s) => s.job)).size;
    try {
      const { logits, stats, cached } = await this.inner.evaluate(pairs);
      this.onBatch?.({ pairs: pairs.length, tokens, evaluatedTokens: stats.evaluatedTokens, requests, ms: performance.now() - started });
      let k = 0;
      for (const s of slices) {
        for (let i = s.from; i < s.to; i++) s.job.logits[i] = logits[k++] ?? Number.NaN;
        s.job.done += s.to - s.from;
        // Cache hits, like tokens, are per batch: shared out by pairs.
        s.job.cached += Math.round((cached * (s.to - s.from)) / pairs.length);
        // Token accounting is shared out by pair tokens (prefix reuse is per batch, not per request).
        const own = s.job.pairs.slice(s.from, s.to).reduce((n, p) => n + p.tokens.length, 0);
        s.job.stats.pairTokens += own;
        s.job.stats.evaluatedTokens += tokens > 0 ? Math.round((stats.evaluatedTokens * own) / tokens) : 0;
        this.finishIfDone(s.job);
      }
    } catch (error) {
      this.onBatch?.({ pairs: pairs.length, tokens, evaluatedTokens: 0, requests, ms: performance.now() - started, error });
      if (requests === 1) {
        for (const s of slices) this.fail(s.job, error);
        return;
      }
      // One request's pair (too long for the memory left, say) must not fail its neighbours:
      // each request of the batch is tried again on its own.
      for (const job of new Set(slices.map((s) => s.job))) {
        if (!job.settled) await this.runBatch(slices.filter((s) => s.job === job));
      }
    }
  }

  private finishIfDone(job: Job): void {
    if (job.settled || job.done < job.pairs.length) return;
    job.settled = true;
    job.cleanup();
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
    const now = performance.now();
    const startedAt = job.startedAt ?? now;
    job.resolve({
      logits: job.logits,
      stats: job.stats,
      cached: job.cached,
      queueMs: startedAt - job.submittedAt,
      inferenceMs: now - startedAt,
    });
  }

  /** Resolves when nothing is queued or running (for graceful shutdown). */
  async drain(pollMs = 20): Promise<void> {
    while (this.running || this.jobs.length > 0) await new Promise((r) => setTimeout(r, pollMs));
  }
}
