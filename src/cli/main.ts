#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { isRerankError } from "../errors/errors.js";
import { exitCodeOf } from "../errors/status.js";
import { PACKAGE_VERSION } from "../version.js";
import { registerBench } from "./bench.js";
import { registerConvert } from "./convert.js";
import { registerDev } from "./dev.js";
import { registerDoctor } from "./doctor.js";
import { registerCalibrate } from "./calibrate.js";
import { registerEval } from "./eval.js";
import { registerTune } from "./tune.js";
import { registerPresets } from "./presets.js";
import { registerScore } from "./score.js";
import { registerServe } from "./serve.js";
import { registerStats } from "./stats.js";
import { registerWorker } from "./worker.js";

const program = new Command("qwen-rerank")
  .description("Run and tune Qwen3-Reranker models: exact scores, serving, benchmarks, evaluation and tuning")
  .version(PACKAGE_VERSION)
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();
registerScore(program);
registerServe(program);
registerStats(program);
registerDoctor(program);
registerPresets(program);
registerBench(program);
registerEval(program);
registerTune(program);
registerCalibrate(program);
registerWorker(program);
registerConvert(program);
registerDev(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // help and version end with code 0; usage errors are the user's to fix: exit 2.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (isRerankError(error)) {
    process.stderr.write(`qwen-rerank: ${error.message}\n`);
    process.exitCode = exitCodeOf[error.code];
  } else {
    process.stderr.write(`qwen-rerank: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}
