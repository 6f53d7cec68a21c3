import type { Command } from "commander";
import { Option } from "commander";
import type { AdaptiveOptions } from "../monitor/adaptive.js";
import { AdaptiveController } from "../monitor/adaptive.js";
import { PresetRegistry } from "../prompt/presets.js";
import { startServer } from "../server/serve.js";
import { OPEN_WITHOUT_KEY } from "../server/app.js";
import { applyConfigOptions, applyEnvironment } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg, numberArg, redisUrlArg, rerankerOptionsFrom, sizeArg, sizeAtLeast } from "./flags.js";
import type { ModelArgument } from "./served-models.js";
import { servedModels } from "./served-models.js";


interface ServeFlags extends Omit<ModelFlagValues, "model"> {
  model?: ModelArgument[];
  maxLoadedModels?: number;
  modelsMemory?: number;
  host: string;
  port: number;
  config?: string;
  apiKey?: string;
  corsOrigin?: string[];
  maxDocuments: number;
  maxDocumentChars: number;
  maxBodyBytes: number;
  maxBatchPairs: number;
  maxBatchTokens: number;
  maxQueuePairs: number;
  requestTimeout: number;
  preset?: string;
  modelName?: string;
  monitor: boolean;
  monitorWindow: number;
  monitorSeconds: number;
  adaptive?: "seed";
  adjustEvery: number;
  sloP95Ms?: number;
  sloMaxBatch: number;
  targetScoreMean?: number;
  adaptiveSlowMs?: number;
  adaptiveFastMs?: number;
  adaptiveMinBatch?: number;
  adaptiveMaxBatch?: number;
  adaptiveHighMean?: number;
  adaptiveLowMean?: number;
  adaptiveMinTemperature?: number;
  adaptiveMaxTemperature?: number;
  cacheEntries: number;
  cacheBytes: number;
  cache?: string;
  cacheTtl: number;
  cacheSharedEntries: number;
  quiet?: boolean;
}

function adaptiveOptionsFrom(f: ServeFlags): AdaptiveOptions | undefined {
  const rule = {
    slowMs: f.adaptiveSlowMs,
    fastMs: f.adaptiveFastMs,
    minBatch: f.adaptiveMinBatch,
    maxBatch: f.adaptiveMaxBatch,
    highMean: f.adaptiveHighMean,
    lowMean: f.adaptiveLowMean,
    minTemperature: f.adaptiveMinTemperature,
    maxTemperature: f.adaptiveMaxTemperature,
  };
  const options: AdaptiveOptions = {
    mode: f.adaptive,
    rule: Object.fromEntries(Object.entries(rule).filter(([, v]) => v !== undefined)),
    sloP95Ms: f.sloP95Ms,
    sloMaxBatch: f.sloMaxBatch,
    targetScoreMean: f.targetScoreMean,
    adjustEvery: f.adjustEvery,
  };
  return AdaptiveController.wanted(options) ? options : undefined;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command("serve")
    .description("serve Cohere / Jina / vLLM / TEI compatible rerank APIs over HTTP, with Prometheus metrics")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port to listen on (0: any free port)", intArg(0, 65535), 8080)
    .option("--api-key <key>", `require Authorization: Bearer <key> on every endpoint but the data-free GET ${OPEN_WITHOUT_KEY.join(", ")}`)
    .option("--cors-origin <origin>", "allow CORS from this origin (repeat; * for any; default: CORS off)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--max-documents <n>", "documents per request", intArg(1), 1000)
    .option("--max-document-chars <n>", "characters per document or query", intArg(1), 100_000)
    .addOption(new Option("--max-body-bytes <size>", "request body size limit (also after decompression), e.g. 10MB").argParser(sizeAtLeast(1024)).default(10 * 1024 * 1024, "10MB"))
    .option("--max-batch-pairs <n>", "pairs per engine batch (across requests)", intArg(1), 64)
    .option("--max-batch-tokens <n>", "tokens per engine batch", intArg(1), 32768)
    .option("--max-queue-pairs <n>", "pairs waiting before requests get 429", intArg(1), 10000)
    .option("--request-timeout <ms>", "per-request timeout in milliseconds (504 after it)", intArg(1), 120_000)
    .option("--cache-entries <n>", "LRU cache of log-odds, in entries (0: off); temperature/top_p changes reuse it", intArg(0), 0)
    .addOption(new Option("--cache-bytes <size>", "memory bound of the cache, e.g. 64MB").argParser(sizeAtLeast(1024)).default(32 * 1024 * 1024, "32MB"))
    .option("--cache <redis-url>", "a log-odds cache in Redis shared by replicas (redis://HOST:PORT/DB), behind the LRU (on with 100000 entries unless --cache-entries); Redis down never fails a request", redisUrlArg)
    .option("--cache-ttl <s>", "seconds an entry lives in the shared cache", intArg(1), 604_800)
    .option("--cache-shared-entries <n>", "most entries in the shared cache; the oldest written go first (~150 bytes of Redis memory each)", intArg(1), 1_000_000)
    .option("--monitor-window <n>", "requests the rolling figures of GET /stats cover", intArg(1), 1000)
    .option("--monitor-seconds <s>", "seconds of history the rolling figures of GET /stats cover", intArg(1), 300)
    .option("--no-monitor", "no request monitor (GET /stats answers 404)")
    .addOption(new Option("--adaptive <mode>", "adaptive control by the guide's rule: batch size from the average latency, temperature from the score mean").choices(["seed"]))
    .option("--adjust-every <n>", "requests between two adaptive checks", intArg(1), 50)
    .option("--slo-p95-ms <ms>", "batch size: the largest that keeps p95 latency under this (additive increase, halving when over)", intArg(1))
    .option("--slo-max-batch <n>", "largest batch size the latency objective may reach", intArg(1), 64)
    .option("--target-score-mean <x>", "temperature: the one that puts the score mean of recent requests at x, solved from their log-odds", numberArg(0, 1))
    .option("--adaptive-slow-ms <ms>", "seed rule: average latency above which the batch size halves (default: 1000)", numberArg(0, Infinity))
    .option("--adaptive-fast-ms <ms>", "seed rule: average latency below which the batch size doubles (default: 200)", numberArg(0, Infinity))
    .option("--adaptive-min-batch <n>", "seed rule: smallest batch size (default: 4)", intArg(1))
    .option("--adaptive-max-batch <n>", "seed rule: largest batch size (default: 16)", intArg(1))
    .option("--adaptive-high-mean <x>", "seed rule: score mean above which the temperature rises by 10% (default: 0.9)", numberArg(0, 1))
    .option("--adaptive-low-mean <x>", "seed rule: score mean below which the temperature falls by 10% (default: 0.6)", numberArg(0, 1))
    .option("--adaptive-min-temperature <t>", "smallest temperature adaptive control sets (default: 0.3)", numberArg(0, Infinity))
    .option("--adaptive-max-temperature <t>", "largest temperature adaptive control sets (default: 1)", numberArg(0, Infinity))
    .option("--model-name <name>", "name of the one model, reported by /v1/models and in responses (default: the file name); name several with --model NAME=PATH")
    .option("--max-loaded-models <n>", "with several models: most loaded at once; the least recently used idle one unloads (default: no limit)", intArg(1))
    .option("--models-memory <size>", "with several models: weights + KV cache all loaded models may hold, e.g. 12GB (default: no limit)", sizeArg)
    .option("--quiet", "no per-request log lines");
  // Knob flags are the defaults of every request; a preset's batch size also sets --max-batch-pairs unless given.
  addModelFlags(cmd, "serve");
  cmd.action(async () => {
    // Precedence: command line, then QWEN_RERANK_* environment variables, then the config file.
    applyEnvironment(cmd);
    const extras = applyConfigOptions(cmd);
    const f = cmd.opts<ServeFlags>();
    const served = servedModels(f.model ?? [], extras.models, f.modelName);
    const firstSource = "single" in served ? served.single : (Object.values(served.several)[0] ?? "");
    // A preset's batch size applies to the engine batches unless --max-batch-pairs was given.
    const presetBatch =
      f.preset !== undefined && cmd.getOptionValueSource("maxBatchPairs") === "default" ? new PresetRegistry(extras.presets).get(f.preset).batchSize : undefined;
    const running = await startServer({
      models: "several" in served ? served.several : undefined,
      maxLoadedModels: f.maxLoadedModels,
      modelsMemoryBytes: f.modelsMemory,
      reranker: {
        ...rerankerOptionsFrom("serve", { ...f, model: firstSource }, extras),
        cache: f.cacheEntries > 0 ? { maxEntries: f.cacheEntries, maxBytes: f.cacheBytes } : undefined,
        sharedCache: f.cache !== undefined ? { url: f.cache, ttlSeconds: f.cacheTtl, maxEntries: f.cacheSharedEntries } : undefined,
        monitor: f.monitor ? { windowRequests: f.monitorWindow, windowSeconds: f.monitorSeconds } : false,
        adaptive: adaptiveOptionsFrom(f),
      },
      server: {
        apiKey: f.apiKey,
        corsOrigins: f.corsOrigin,
        maxDocuments: f.maxDocuments,
        maxDocumentChars: f.maxDocumentChars,
        maxBodyBytes: f.maxBodyBytes,
        modelName: f.modelName,
        log: f.quiet ? undefined : (line) => process.stdout.write(`${JSON.stringify(line)}\n`),
      },
      scheduler: { maxBatchPairs: presetBatch ?? f.maxBatchPairs, maxBatchTokens: f.maxBatchTokens, maxQueuePairs: f.maxQueuePairs },
      host: f.host,
      port: f.port,
      requestTimeoutMs: f.requestTimeout,
    });
    const names = running.models.names;
    process.stderr.write(`qwen-rerank: listening on ${running.url} (loading ${firstSource}${names.length > 1 ? `; ${names.length - 1} more load on first use: ${names.slice(1).join(", ")}` : ""})\n`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`qwen-rerank: ${signal}: finishing in-flight requests\n`);
      void running.close().then(() => process.exit(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    try {
      await running.ready;
    } catch (error) {
      await running.close().catch(() => undefined);
      throw error;
    }
    process.stderr.write(`qwen-rerank: ready at ${running.url} (POST /v1/rerank, /v2/rerank, /rerank, /score; GET /health, /stats, /metrics)\n`);
  });
}
