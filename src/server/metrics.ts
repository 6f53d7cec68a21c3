import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { EngineInfo } from "../engines/engine.js";
import type { PipelineResult } from "../pipeline/pipeline.js";
import type { BatchInfo, SchedulerState } from "../scheduler/scheduler.js";
import type { CacheStats } from "../scoring/logit-cache.js";
import type { SharedCacheStats } from "../scoring/shared-cache.js";
import type { ModelStatus } from "./model-status.js";

/** What the metrics read at scrape time, summed over the loaded models. */
export interface MetricsSources {
  /** The schedulers of the loaded models. */
  queues: () => readonly SchedulerState[];
  /** The log-odds caches of the loaded models (empty when off). */
  caches?: (() => readonly CacheStats[]) | undefined;
  /** The Redis tiers of the loaded models (empty when off). */
  sharedCaches?: (() => readonly SharedCacheStats[]) | undefined;
  /** Every served model and its state. */
  models?: (() => readonly ModelStatus[]) | undefined;
}

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The server's Prometheus metrics, in a registry of its own (several servers can share a process). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: "qwen_rerank_requests_total", help: "HTTP requests by endpoint and status", labelNames: ["endpoint", "status"], registers: [this.registry] });
  readonly requestSeconds = new Histogram({ name: "qwen_rerank_request_duration_seconds", help: "Request latency", labelNames: ["endpoint"], buckets: latencyBuckets, registers: [this.registry] });
  readonly tokenizationSeconds = new Histogram({ name: "qwen_rerank_tokenization_duration_seconds", help: "Time a request spent on knobs, routing and tokenizing (x-tokenization-time)", buckets: latencyBuckets, registers: [this.registry] });
  readonly computeTokens = new Counter({ name: "qwen_rerank_compute_tokens_total", help: "Prompt tokens of answered requests (x-compute-tokens)", registers: [this.registry] });
  readonly computeCharacters = new Counter({ name: "qwen_rerank_compute_characters_total", help: "Query and document characters of answered requests (x-compute-characters)", registers: [this.registry] });
  readonly queueSeconds = new Histogram({ name: "qwen_rerank_queue_duration_seconds", help: "Time a request waited for its first batch", buckets: latencyBuckets, registers: [this.registry] });
  readonly inferenceSeconds = new Histogram({ name: "qwen_rerank_inference_duration_seconds", help: "Time from a request's first batch to its last pair", buckets: latencyBuckets, registers: [this.registry] });
  readonly batchPairs = new Histogram({ name: "qwen_rerank_batch_pairs", help: "Pairs per engine batch", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry] });
  readonly batchTokens = new Histogram({ name: "qwen_rerank_batch_tokens", help: "Tokens per engine batch (pairs evaluated whole)", buckets: [64, 256, 1024, 4096, 16384, 65536], registers: [this.registry] });
  readonly batchRequests = new Histogram({ name: "qwen_rerank_batch_requests", help: "Requests merged into one engine batch", buckets: [1, 2, 4, 8, 16, 32], registers: [this.registry] });
  readonly evaluatedTokens = new Counter({ name: "qwen_rerank_evaluated_tokens_total", help: "Tokens the model evaluated (after prefix reuse)", registers: [this.registry] });
  readonly pairTokens = new Counter({ name: "qwen_rerank_pair_tokens_total", help: "Tokens of all scored pairs", registers: [this.registry] });
  readonly engineErrors = new Counter({ name: "qwen_rerank_engine_errors_total", help: "Engine batches that failed", registers: [this.registry] });
  readonly scores = new Histogram({ name: "qwen_rerank_score", help: "Distribution of returned scores", buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1], registers: [this.registry] });
  readonly adjustments = new Counter({ name: "qwen_rerank_adjustments_total", help: "Knob changes made by adaptive control or by a memory back-off of the engine", labelNames: ["knob"], registers: [this.registry] });
  readonly engineInfo = new Gauge({ name: "qwen_rerank_engine_info", help: "Each loaded engine (value 1)", labelNames: ["backend", "model", "file", "flavor", "scoring_path", "sequences", "max_length"], registers: [this.registry] });
  private readonly engineLabels = new Map<string, Record<string, string>>();
  readonly modelLoads = new Counter({ name: "qwen_rerank_model_loads_total", help: "Model loads (the first and every reload after an unload), by outcome", labelNames: ["model", "outcome"], registers: [this.registry] });
  readonly modelUnloads = new Counter({ name: "qwen_rerank_model_unloads_total", help: "Models unloaded, by reason (max_loaded_models, memory_budget, shutdown)", labelNames: ["model", "reason"], registers: [this.registry] });

  /** The sources are read at scrape time (nothing is loaded yet while the first model loads). */
  constructor(sources: MetricsSources) {
    const state = () => sources.queues().reduce((sum, q) => ({ queuedPairs: sum.queuedPairs + q.queuedPairs, activeRequests: sum.activeRequests + q.activeRequests }), { queuedPairs: 0, activeRequests: 0 });
    const cache = () => {
      const all = sources.caches?.() ?? [];
      return all.length === 0 ? undefined : all.reduce((sum, c) => ({ ...sum, hits: sum.hits + c.hits, misses: sum.misses + c.misses, entries: sum.entries + c.entries }));
    };
    collectDefaultMetrics({ register: this.registry, prefix: "qwen_rerank_process_" });
    // Values owned elsewhere (scheduler, cache) are read at scrape time.
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    gauge("qwen_rerank_queue_pairs", "Pairs waiting in the schedulers of all models", () => state().queuedPairs);
    gauge("qwen_rerank_active_requests", "Requests in the schedulers of all models (waiting or running)", () => state().activeRequests);
    const shared = () => (sources.sharedCaches?.() ?? []).reduce((sum, c) => ({ hits: sum.hits + c.hits, misses: sum.misses + c.misses, errors: sum.errors + c.errors, up: sum.up && c.up, any: true }), { hits: 0, misses: 0, errors: 0, up: true, any: false });
    gauge("qwen_rerank_shared_cache_hits", "Log-odds found in the shared Redis cache since start (after LRU misses)", () => shared().hits);
    gauge("qwen_rerank_shared_cache_misses", "Log-odds the shared Redis cache did not have (or could not answer in time)", () => shared().misses);
    gauge("qwen_rerank_shared_cache_errors", "Shared-cache lookups and writes that failed (those pairs were scored here)", () => shared().errors);
    gauge("qwen_rerank_shared_cache_hit_ratio", "Shared-cache hits / lookups since start", () => {
      const s = shared();
      return s.hits + s.misses > 0 ? s.hits / (s.hits + s.misses) : 0;
    });
    gauge("qwen_rerank_shared_cache_up", "1 while every shared-cache connection is up, 0 otherwise (or when there is none)", () => {
      const s = shared();
      return s.any && s.up ? 1 : 0;
    });
    const models = sources.models;
    new Gauge({
      name: "qwen_rerank_model_state",
      help: "Each served model's state (value 1 for its current state: unloaded, loading, loaded, unloading, failed)",
      labelNames: ["model", "state"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const m of models?.() ?? []) this.set({ model: m.name, state: m.state }, 1);
      },
    });
    new Gauge({
      name: "qwen_rerank_model_memory_bytes",
      help: "Weights plus KV cache of each loaded model (what the memory budget counts)",
      labelNames: ["model"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const m of models?.() ?? []) if (m.state === "loaded" && m.bytes !== undefined) this.set({ model: m.name }, m.bytes);
      },
    });
    gauge("qwen_rerank_cache_hits", "Log-odds cache hits since start (0 when the cache is off)", () => cache()?.hits ?? 0);
    gauge("qwen_rerank_cache_misses", "Log-odds cache misses since start", () => cache()?.misses ?? 0);
    gauge("qwen_rerank_cache_entries", "Entries in the log-odds cache", () => cache()?.entries ?? 0);
    gauge("qwen_rerank_cache_hit_ratio", "Log-odds cache hits / lookups since start", () => {
      const c = cache();
      return c && c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : 0;
    });
  }

  /** Records one answered request. */
  observeRequest(outcome: PipelineResult, characters: number): void {
    this.tokenizationSeconds.observe(outcome.tokenizationMs / 1000);
    this.computeTokens.inc(outcome.tokens);
    this.computeCharacters.inc(characters);
    this.queueSeconds.observe(outcome.queueMs / 1000);
    this.inferenceSeconds.observe(outcome.inferenceMs / 1000);
    for (const r of outcome.results) this.scores.observe(r.score);
  }

  /** Records one engine batch of the scheduler. */
  observeBatch(b: BatchInfo): void {
    this.batchPairs.observe(b.pairs);
    this.batchTokens.observe(b.tokens);
    this.batchRequests.observe(b.requests);
    this.evaluatedTokens.inc(b.evaluatedTokens);
    this.pairTokens.inc(b.tokens);
    if (b.error) this.engineErrors.inc();
  }

  /** Describes a served model's engine (again after a memory back-off changed its sequences). */
  setEngine(model: string, info: EngineInfo, maxLength: number): void {
    this.removeEngine(model);
    const labels = { backend: info.backend, model, file: info.model, flavor: info.flavor, scoring_path: info.scoringPath, sequences: String(info.sequences), max_length: String(maxLength) };
    this.engineLabels.set(model, labels);
    this.engineInfo.set(labels, 1);
  }

  /** Forgets an unloaded model's engine. */
  removeEngine(model: string): void {
    const labels = this.engineLabels.get(model);
    if (labels) this.engineInfo.remove(labels);
    this.engineLabels.delete(model);
  }
}
