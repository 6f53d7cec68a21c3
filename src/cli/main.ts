#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { flagOfField } from "../config/knobs.js";
import { ValidationError, isRerankError } from "../errors/errors.js";
import { exitCodeOf } from "../errors/status.js";
import { PACKAGE_VERSION } from "../version.js";

// Each command's module, loaded on demand: a command pulls in only what it uses (the server's,
// the queue's and the evaluation's libraries cost ~1 s of startup together).
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  score: async () => (await import("./score.js")).registerScore,
  serve: async () => (await import("./serve.js")).registerServe,
  stats: async () => (await import("./stats.js")).registerStats,
  doctor: async () => (await import("./doctor.js")).registerDoctor,
  presets: async () => (await import("./presets.js")).registerPresets,
  bench: async () => (await import("./bench.js")).registerBench,
  eval: async () => (await import("./eval.js")).registerEval,
  tune: async () => (await import("./tune.js")).registerTune,
  calibrate: async () => (await import("./calibrate.js")).registerCalibrate,
  worker: async () => (await import("./worker.js")).registerWorker,
  convert: async () => (await import("./convert.js")).registerConvert,
  dev: async () => (await import("./dev.js")).registerDev,
};

const program = new Command("qwen-rerank")
  .description("Run and tune Qwen3-Reranker models: exact scores, serving, benchmarks, evaluation and tuning")
  .version(PACKAGE_VERSION)
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();
// The command named on the line alone; all of them for the top-level help or an unknown name, and
// with a config file, which may hold other commands' options (one file for score and serve).
const named = process.argv[2];
const withConfig = process.argv.some((a) => a === "-c" || a.startsWith("--config") || /^-c./.test(a));
const loaders = named !== undefined && Object.hasOwn(COMMANDS, named) && !withConfig ? [COMMANDS[named]] : Object.values(COMMANDS);
for (const load of loaders) if (load) (await load())(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // help and version end with code 0; usage errors are the user's to fix: exit 2.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (isRerankError(error)) {
    // A library field ("maxLength") is told as the flag the user typed ("--max-length").
    const told = error instanceof ValidationError ? error.renamed(flagOfField) : error;
    process.stderr.write(`qwen-rerank: ${told.message}\n`);
    process.exitCode = exitCodeOf[error.code];
  } else {
    process.stderr.write(`qwen-rerank: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
