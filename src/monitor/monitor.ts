/** Bounds of the rolling window. */
export interface MonitorOptions {
  /** Most recent requests the rolling figures cover. Default 1000. */
  windowRequests?: number | undefined;
  /** Seconds of history the rolling figures cover. Default 300. */
  windowSeconds?: number | undefined;
}

/** What one request did, as the pipeline saw it (scores and log-odds before selection). */
export interface RequestRecord {
  /** When it ended (ms since the epoch). */
  endedAt: number;
  latencyMs: number;
  queueMs: number;
  inferenceMs: number;
  /** Pairs evaluated (windows count one each) and their prompt tokens. */
  pairs: number;
  tokens: number;
  /** Tokens the engine evaluated (after prefix reuse; 0 when all came from a cache). */
  evaluatedTokens: number;
  cached: number;
  scores: readonly number[];
  logits: readonly number[];
  /** Documents cut to fit max_length, and documents scored as windows. */
  truncated: number;
  chunked: number;
  language: string | undefined;
  /** The error code of a failed request. */
  error?: string | undefined;
}

/** Histogram bins of scores over [0, 1]. */
const SCORE_BINS = 10;

/** What the window keeps of a request: its own figures, and sums in place of its scores. */
interface Entry extends Omit<RequestRecord, "scores" | "logits"> {
  documents: number;
  scoreSum: number;
  scoreSquares: number;
  logitSum: number;
  logitSquares: number;
  /** Standard deviation of the scores inside this request (undefined below 2 documents). */
  spread: number | undefined;
  histogram: number[];
}

export interface MonitorSnapshot {
  /** Since start. */
  total_requests: number;
  total_errors: number;
  /** Failed requests since start by error code (cancelled requests included). */
  errors_by_code: Record<string, number>;
  total_pairs: number;
  total_tokens: number;
  uptime_s: number;
  /** The rolling window the figures below cover. */
  window: { requests: number; max_requests: number; max_seconds: number };
  avg_latency_ms: number;
  latency_ms: { p50: number; p95: number; p99: number };
  avg_queue_ms: number;
  avg_inference_ms: number;
  /** Latency per evaluated pair and per prompt token. */
  latency_per_pair_ms: number;
  latency_per_token_ms: number;
  /** Over the wall time the window spans. */
  pairs_per_s: number;
  tokens_per_s: number;
  score_mean: number;
  score_std: number;
  /** Counts of scores in SCORE_BINS equal bins over [0, 1]. */
  score_histogram: number[];
  logit_mean: number;
  logit_std: number;
  /** Mean, over requests of two documents or more, of the standard deviation of their scores. */
  score_spread_mean: number;
  truncation_rate: number;
  chunking_rate: number;
  cache_hit_ratio: number;
  error_rate: number;
  languages: Record<string, number>;
  /** Pairs per engine call over the last calls. */
  batch_pairs: { mean: number; max: number; calls: number };
  /** The knob values in force now (temperature, batch_size: the most pairs per engine call, or null for no limit, ...). */
  current: Record<string, number | string | null>;
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const std = (sum: number, squares: number, n: number) => (n < 2 ? 0 : Math.sqrt(Math.max(0, (squares - (sum * sum) / n) / (n - 1))));

/** Nearest-rank percentile (the value below which p% of the samples lie). */
export function percentileOf(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

function entryOf(r: RequestRecord): Entry {
  const histogram = new Array<number>(SCORE_BINS).fill(0);
  let scoreSum = 0;
  let scoreSquares = 0;
  for (const s of r.scores) {
    scoreSum += s;
    scoreSquares += s * s;
    const bin = Math.min(SCORE_BINS - 1, Math.max(0, Math.floor(s * SCORE_BINS)));
    histogram[bin] = (histogram[bin] ?? 0) + 1;
  }
  let logitSum = 0;
  let logitSquares = 0;
  for (const z of r.logits) {
    logitSum += z;
    logitSquares += z * z;
  }
  const n = r.scores.length;
  const { scores: _scores, logits: _logits, ...own } = r;
  return { ...own, documents: n, scoreSum, scoreSquares, logitSum, logitSquares, spread: n >= 2 ? std(scoreSum, scoreSquares, n) : undefined, histogram };
}

/**
 * Watches every request of a pipeline: latencies, throughput, the score and log-odds
 * distributions, truncation, chunking, languages, cache hits and errors, over a rolling window
 * (the last N requests within the last T seconds) plus totals since start. It keeps sums per
 * request, not the scores themselves, so its memory is bounded by the window's request count.
 */
export class Monitor {
  private readonly entries: Entry[] = [];
  /** Pairs of each recent engine call (as many as the window holds requests). */
  private readonly batches: number[] = [];
  private readonly listeners = new Set<(record: RequestRecord) => void>();
  private readonly startedAt: number;
  private readonly maxRequests: number;
  private readonly maxSeconds: number;
  private totals = { requests: 0, errors: 0, pairs: 0, tokens: 0 };
  private readonly errorsByCode: Record<string, number> = {};
  private current: () => Record<string, number | string | null> = () => ({});

  constructor(
    options: MonitorOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.maxRequests = Math.max(1, Math.floor(options.windowRequests ?? 1000));
    this.maxSeconds = Math.max(1, options.windowSeconds ?? 300);
    this.startedAt = now();
  }

  /** Records one request and tells the listeners. */
  record(record: RequestRecord): void {
    this.totals.requests++;
    if (record.error !== undefined) {
      this.totals.errors++;
      this.errorsByCode[record.error] = (this.errorsByCode[record.error] ?? 0) + 1;
    }
    this.totals.pairs += record.pairs;
    this.totals.tokens += record.tokens;
    this.entries.push(entryOf(record));
    this.trim();
    for (const listener of this.listeners) listener(record);
  }

  /** Records a request that failed before it reached the model (a bad body, no route, too large, unauthorized, or in the pipeline). */
  recordError(code: string, latencyMs: number): void {
    this.record({ endedAt: this.now(), latencyMs, queueMs: 0, inferenceMs: 0, pairs: 0, tokens: 0, evaluatedTokens: 0, cached: 0, scores: [], logits: [], truncated: 0, chunked: 0, language: undefined, error: code });
  }

  /** What `snapshot().current` reports: the knob values in force now (set by the owner of the pipeline). */
  describeCurrent(current: () => Record<string, number | string | null>): void {
    this.current = current;
  }

  /** Records one engine call of `pairs` pairs (several requests may share one in the server). */
  recordBatch(pairs: number): void {
    this.batches.push(pairs);
    if (this.batches.length > this.maxRequests) this.batches.splice(0, this.batches.length - this.maxRequests);
  }

  /** Calls `listener` after every recorded request; returns a function that stops it. */
  onRecord(listener: (record: RequestRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private trim(): void {
    const oldest = this.now() - this.maxSeconds * 1000;
    let drop = Math.max(0, this.entries.length - this.maxRequests);
    while (drop < this.entries.length && (this.entries[drop]?.endedAt ?? 0) < oldest) drop++;
    if (drop > 0) this.entries.splice(0, drop);
  }

  snapshot(): MonitorSnapshot {
    this.trim();
    const all = this.entries;
    const ok = all.filter((e) => e.error === undefined);
    const sum = (f: (e: Entry) => number, es: readonly Entry[] = ok) => es.reduce((n, e) => n + f(e), 0);
    const latencies = ok.map((e) => e.latencyMs);
    const pairs = sum((e) => e.pairs);
    const tokens = sum((e) => e.tokens);
    const documents = sum((e) => e.documents);
    const scoreSum = sum((e) => e.scoreSum);
    const logitSum = sum((e) => e.logitSum);
    // The wall time the window spans: from the start of its first request to the end of its last.
    const span = ok.length === 0 ? 0 : Math.max(...ok.map((e) => e.endedAt)) - Math.min(...ok.map((e) => e.endedAt - e.latencyMs));
    const histogram = new Array<number>(SCORE_BINS).fill(0);
    const languages: Record<string, number> = {};
    for (const e of ok) {
      e.histogram.forEach((c, i) => (histogram[i] = (histogram[i] ?? 0) + c));
      if (e.language !== undefined) languages[e.language] = (languages[e.language] ?? 0) + 1;
    }
    const spreads = ok.flatMap((e) => (e.spread === undefined ? [] : [e.spread]));
    const latencyTotal = sum((e) => e.latencyMs);
    return {
      total_requests: this.totals.requests,
      total_errors: this.totals.errors,
      errors_by_code: { ...this.errorsByCode },
      total_pairs: this.totals.pairs,
      total_tokens: this.totals.tokens,
      uptime_s: (this.now() - this.startedAt) / 1000,
      window: { requests: all.length, max_requests: this.maxRequests, max_seconds: this.maxSeconds },
      avg_latency_ms: mean(latencies),
      latency_ms: { p50: percentileOf(latencies, 50), p95: percentileOf(latencies, 95), p99: percentileOf(latencies, 99) },
      avg_queue_ms: mean(ok.map((e) => e.queueMs)),
      avg_inference_ms: mean(ok.map((e) => e.inferenceMs)),
      latency_per_pair_ms: pairs > 0 ? latencyTotal / pairs : 0,
      latency_per_token_ms: tokens > 0 ? latencyTotal / tokens : 0,
      pairs_per_s: span > 0 ? (pairs * 1000) / span : 0,
      tokens_per_s: span > 0 ? (tokens * 1000) / span : 0,
      score_mean: documents > 0 ? scoreSum / documents : 0,
      score_std: std(scoreSum, sum((e) => e.scoreSquares), documents),
      score_histogram: histogram,
      logit_mean: documents > 0 ? logitSum / documents : 0,
      logit_std: std(logitSum, sum((e) => e.logitSquares), documents),
      score_spread_mean: mean(spreads),
      truncation_rate: documents > 0 ? sum((e) => e.truncated) / documents : 0,
      chunking_rate: documents > 0 ? sum((e) => e.chunked) / documents : 0,
      cache_hit_ratio: pairs > 0 ? sum((e) => e.cached) / pairs : 0,
      error_rate: all.length > 0 ? (all.length - ok.length) / all.length : 0,
      languages,
      batch_pairs: { mean: mean(this.batches), max: this.batches.length > 0 ? Math.max(...this.batches) : 0, calls: this.batches.length },
      current: this.current(),
    };
  }
}
