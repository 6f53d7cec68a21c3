import type { Command } from "commander";
import { checkRedis } from "../distributed/queue.js";
import { runWorker } from "../worker/worker.js";
import { ValidationError } from "../errors/errors.js";
import { openStack } from "../compose/stack.js";
import { DEFAULT_MAX_LENGTH } from "../prompt/template.js";
import type { EngineFlagValues } from "./flags.js";
import { addEngineFlags, engineOptionsFrom, intArg, redisUrlArg } from "./flags.js";

interface WorkerFlags extends Omit<EngineFlagValues, "queue"> {
  queue: string;
  model?: string;
  maxLength: number;
  lockMs: number;
  quiet?: boolean;
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command("worker")
    .description("score jobs from a BullMQ/Redis queue for coordinators (`score --input`, eval, tune, calibrate with --queue); run any number, anywhere")
    .requiredOption("--queue <redis-url>", "the BullMQ/Redis queue (redis://HOST:PORT/DB)", redisUrlArg)
    .option("-m, --model <file>", "a Qwen3-Reranker model: GGUF file, hf: URI, Hugging Face checkpoint folder or hub id; jobs come only from coordinators with the same model file (by content) and engine flags")
    .option("--max-length <n>", "longest pair this worker accepts, in tokens (the engine's context)", intArg(16, 1_000_000), DEFAULT_MAX_LENGTH)
    .option("--lock-ms <ms>", "a job's lock: when this worker dies mid-job, another takes the job after about this long", intArg(500), 30_000)
    .option("--quiet", "no per-job log lines");
  addEngineFlags(cmd);
  cmd.action(async () => {
    const flags = cmd.opts<WorkerFlags>();
    if (!flags.model) throw new ValidationError("a model is required (--model)");
    // Before paying for a model load: say so when Redis is not there.
    await checkRedis(flags.queue);
    const { queue: _queue, ...engine } = engineOptionsFrom(flags);
    const stack = await openStack({ ...engine, model: flags.model, maxLength: flags.maxLength, monitor: false });
    const log = (line: object) => {
      if (!flags.quiet) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);
    };
    let worker: Awaited<ReturnType<typeof runWorker>>;
    try {
      worker = await runWorker(stack, { url: flags.queue, lockMs: flags.lockMs, onJob: log });
    } catch (error) {
      await stack.dispose();
      throw error;
    }
    const info = stack.engine.info;
    process.stderr.write(`qwen-rerank: worker ready: ${info.model} (fingerprint ${info.fingerprint}, ${info.numerics}) on queue ${worker.name}\n`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`qwen-rerank: ${signal}: finishing the job in hand\n`);
      void worker
        .close()
        .then((clean) => {
          if (!clean) process.stderr.write("qwen-rerank: Redis did not answer; leaving without a clean goodbye (a job taken but not finished goes to another worker after --lock-ms)\n");
          return stack.dispose();
        })
        .then(() => process.exit(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
