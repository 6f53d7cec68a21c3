import type { Engine, ScoreStats } from "../engines/engine.js";
import { groupByHead } from "../prompt/groups.js";
import type { LogitLookup } from "../scoring/logit-cache.js";

/** One pair's tokens, ready for any batch; pairs with the same head (instruction and query) share its evaluation. */
export interface PreparedPair {
  tokens: number[];
  truncated: boolean;
  /** Length of the reusable head (PairTokens.headLength). */
  headLength: number;
}

export interface LogOddsOptions {
  /** Stops work on pairs not yet started; the promise rejects with a `cancelled` error. */
  signal?: AbortSignal | undefined;
  /** Pairs finished so far, of `total`. */
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Milliseconds before the call fails with a `timeout` error (honoured by the scheduler). Default: none. */
  timeoutMs?: number | undefined;
  /**
   * Pairs (by index into the call's pairs) whose log-odds are known before the call ends. Only
   * sources that finish a call in pieces tell it (the queue, job by job), so that a store in front
   * keeps what was scored when the call is interrupted.
   */
  onValues?: ((indices: readonly number[], logits: readonly number[]) => void) | undefined;
}

/** Raw log-odds of prepared pairs, in their order, with what it took to get them. */
export interface LogOdds {
  logits: Float64Array;
  stats: ScoreStats;
  /** Pairs answered by a cache instead of the engine. */
  cached: number;
  /** Milliseconds spent waiting for a batch (scheduler), and evaluating. */
  queueMs: number;
  inferenceMs: number;
}

/**
 * Where the pipeline gets log-odds: the engine itself, a cache in front of another source, or the
 * scheduler that merges the pairs of concurrent requests. Every implementation returns, for the
 * same pair, the same bits (docs/architecture.md, "Determinism").
 */
export interface LogOddsSource {
  /**
   * Pairs per call that keep this source busy, when one query's pairs would not (the queue wants
   * many jobs queued at once); bulk scoring (eval, tune, calibrate) then batches queries together.
   */
  readonly preferredCallPairs?: number | undefined;
  evaluate(pairs: readonly PreparedPair[], options?: LogOddsOptions): Promise<LogOdds>;
}

/** Straight to the engine: pairs grouped by head, results back in input order. */
export class EngineSource implements LogOddsSource {
  /** `onCall` hears the size of every engine call (the monitor's batch sizes). */
  constructor(
    private readonly engine: Engine,
    private readonly onCall?: (pairs: number) => void,
  ) {}

  async evaluate(pairs: readonly PreparedPair[], options: LogOddsOptions = {}): Promise<LogOdds> {
    const started = performance.now();
    this.onCall?.(pairs.length);
    const { groups, indices } = groupByHead(pairs);
    const total = pairs.length;
    const onProgress = options.onProgress;
    const { logits: grouped, stats } = await this.engine.score(groups, {
      signal: options.signal,
      onProgress: onProgress ? (done) => onProgress(done, total) : undefined,
    });
    const logits = new Float64Array(total);
    let k = 0;
    for (const idx of indices) for (const i of idx) logits[i] = grouped[k++] ?? Number.NaN;
    return { logits, stats, cached: 0, queueMs: 0, inferenceMs: performance.now() - started };
  }
}

/**
 * A lookup (the server's LRU, or the log-odds file of eval/tune/calibrate) in front of another
 * source: known pairs are answered from it, only the rest reach `inner`, and their fresh values
 * are recorded.
 */
export class CachedSource implements LogOddsSource {
  constructor(
    private readonly lookup: LogitLookup,
    private readonly inner: LogOddsSource,
  ) {}

  async evaluate(pairs: readonly PreparedPair[], options: LogOddsOptions = {}): Promise<LogOdds> {
    const keys = pairs.map((p) => this.lookup.key(p.tokens));
    const logits = new Float64Array(pairs.length);
    const missing: number[] = [];
    (await this.lookup.getMany(keys)).forEach((z, i) => {
      if (z === undefined) missing.push(i);
      else logits[i] = z;
    });
    const cached = pairs.length - missing.length;
    if (missing.length === 0) return { logits, stats: { evaluatedTokens: 0, pairTokens: 0 }, cached, queueMs: 0, inferenceMs: 0 };
    const onProgress = options.onProgress;
    // Values computed while the engine changed its numerics (a memory back-off) are not stored:
    // which pairs were computed before the change is unknown.
    const first = missing[0] ?? 0;
    const unchanged = () => this.lookup.key(pairs[first]?.tokens ?? []) === keys[first];
    const recorded = new Set<number>();
    const record = (js: readonly number[], values: ArrayLike<number>) => {
      const entries: Array<readonly [string, number]> = [];
      js.forEach((j, k) => {
        if (recorded.has(j)) return;
        recorded.add(j);
        entries.push([keys[missing[j] ?? 0] ?? "", values[k] ?? Number.NaN]);
      });
      if (entries.length > 0) this.lookup.setMany(entries);
    };
    const fresh = await this.inner.evaluate(
      missing.map((i) => pairs[i] as PreparedPair),
      {
        ...options,
        onProgress: onProgress ? (done) => onProgress(cached + done, pairs.length) : undefined,
        onValues: (js, values) => {
          if (unchanged()) record(js, values);
          options.onValues?.(js.map((j) => missing[j] ?? 0), values);
        },
      },
    );
    missing.forEach((i, j) => (logits[i] = fresh.logits[j] ?? Number.NaN));
    if (unchanged()) record(missing.map((_, j) => j), fresh.logits);
    return { ...fresh, logits, cached: cached + fresh.cached };
  }
}
