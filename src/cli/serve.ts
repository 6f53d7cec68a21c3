import type { Command } from "commander";
import { PresetRegistry } from "../prompt/presets.js";
import { startServer } from "../server/serve.js";
import { applyConfigOptions, applyEnvironment } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg, rerankerOptionsFrom } from "./flags.js";

interface ServeFlags extends ModelFlagValues {
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
  cacheEntries: number;
  cacheBytes: number;
  quiet?: boolean;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command("serve")
    .description("serve Cohere / Jina / vLLM / TEI compatible rerank APIs over HTTP, with Prometheus metrics")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port to listen on (0: any free port)", intArg(0, 65535), 8080)
    .option("--api-key <key>", "require Authorization: Bearer <key> (all endpoints but /health)")
    .option("--cors-origin <origin>", "allow CORS from this origin (repeat; * for any; default: CORS off)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--max-documents <n>", "documents per request", intArg(1), 1000)
    .option("--max-document-chars <n>", "characters per document or query", intArg(1), 100_000)
    .option("--max-body-bytes <n>", "request body size limit", intArg(1024), 10 * 1024 * 1024)
    .option("--max-batch-pairs <n>", "pairs per engine batch (across requests)", intArg(1), 64)
    .option("--max-batch-tokens <n>", "tokens per engine batch", intArg(1), 32768)
    .option("--max-queue-pairs <n>", "pairs waiting before requests get 429", intArg(1), 10000)
    .option("--request-timeout <ms>", "per-request timeout in milliseconds (504 after it)", intArg(1), 120_000)
    .option("--cache-entries <n>", "LRU cache of log-odds, in entries (0: off); temperature/top_p changes reuse it", intArg(0), 0)
    .option("--cache-bytes <n>", "memory bound of the cache", intArg(1024), 32 * 1024 * 1024)
    .option("--model-name <name>", "model name reported by /v1/models (default: the file name)")
    .option("--quiet", "no per-request log lines");
  // Knob flags are the defaults of every request; a preset's batch size also sets --max-batch-pairs unless given.
  addModelFlags(cmd, "serve");
  cmd.action(async () => {
    // Precedence: command line, then QWEN_RERANK_* environment variables, then the config file.
    applyEnvironment(cmd);
    const extras = applyConfigOptions(cmd);
    const f = cmd.opts<ServeFlags>();
    if (!f.model) {
      cmd.error("error: a model is required (--model, QWEN_RERANK_MODEL or `model:` in --config)", { exitCode: 2 });
      return;
    }
    // A preset's batch size applies to the engine batches unless --max-batch-pairs was given.
    const presetBatch =
      f.preset !== undefined && cmd.getOptionValueSource("maxBatchPairs") === "default" ? new PresetRegistry(extras.presets).get(f.preset).batchSize : undefined;
    const running = await startServer({
      reranker: {
        ...rerankerOptionsFrom("serve", { ...f, model: f.model }, extras),
        cache: f.cacheEntries > 0 ? { maxEntries: f.cacheEntries, maxBytes: f.cacheBytes } : undefined,
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
    process.stderr.write(`qwen-rerank: listening on ${running.url} (loading ${f.model})\n`);
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
    process.stderr.write(`qwen-rerank: ready at ${running.url} (POST /v1/rerank, /v2/rerank, /rerank, /score; GET /health, /metrics)\n`);
  });
}
