import type { Llama, LlamaModel, Token } from "node-llama-cpp";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import type { LlamaEngineOptions } from "./options.js";

// The llama.cpp runtime and the GGUF's vocabulary: what both engines take from node-llama-cpp (the
// onnx engine tokenizes with it), apart from the llama.cpp engine itself.

const logLevelOf = { error: LlamaLogLevel.error, warn: LlamaLogLevel.warn, info: LlamaLogLevel.info, debug: LlamaLogLevel.debug };

const llamaInstances = new Map<string, Promise<Llama>>();

/** One llama.cpp runtime per GPU setting and process; loading it twice wastes seconds and memory. */
export function sharedLlama(gpu: LlamaEngineOptions["gpu"], logLevel: NonNullable<LlamaEngineOptions["logLevel"]>): Promise<Llama> {
  const key = `${String(gpu ?? "auto")}:${logLevel}`;
  // A CPU runtime asked for after the engine choice's "auto" one found no GPU is that one: loading a
  // second costs ~0.6 s of a start (the onnx engine's vocabulary asks for the CPU's).
  const auto = llamaInstances.get(`auto:${logLevel}`);
  if (gpu === false && auto && !llamaInstances.has(key)) {
    return auto.then(
      (found) => (found.gpu === false ? found : startLlama(key, gpu, logLevel)),
      () => startLlama(key, gpu, logLevel),
    );
  }
  return startLlama(key, gpu, logLevel);
}

function startLlama(key: string, gpu: LlamaEngineOptions["gpu"], logLevel: NonNullable<LlamaEngineOptions["logLevel"]>): Promise<Llama> {
  let llama = llamaInstances.get(key);
  if (!llama) {
    // build "never": a missing prebuilt binary is an error, never a download or a compile.
    // Its logs go to stderr (its own logger writes info to stdout, into `score --json`'s output).
    const logger = (_level: LlamaLogLevel, message: string) => void process.stderr.write(`[node-llama-cpp] ${message}\n`);
    llama = getLlama({ gpu: gpu ?? "auto", build: "never", logLevel: logLevelOf[logLevel], logger, progressLogs: false }).catch((error: unknown) => {
      // node-llama-cpp says "NoBinaryFoundError" when the build for a named GPU is not installed.
      if (error instanceof Error && /NoBinaryFound/.test(`${error.name} ${error.message}`) && gpu) {
        throw new RerankError("engine_unavailable", `no llama.cpp build for --gpu ${String(gpu)} is installed here (or its drivers are missing); use --gpu auto (the best one this machine can run) or --gpu cpu`, { cause: error });
      }
      throw error;
    });
    llamaInstances.set(key, llama);
    // A failed start is not remembered: the next engine tries again.
    llama.catch(() => llamaInstances.delete(key));
  }
  return llama;
}

/** The GGUF's own tokenizer, through llama.cpp (both engines use it). */
export function llamaTokenizer(model: LlamaModel): PromptTokenizer {
  return {
    tokenize: (text, parseSpecial) => model.tokenize(text, parseSpecial),
    detokenize: (tokens) => model.detokenize(tokens as Token[]),
  };
}

/** The id of a word that must be one token in a Qwen3 vocabulary ("yes", "no"). */
export function singleToken(model: LlamaModel, text: string): number {
  const ids = model.tokenize(text, false);
  if (ids.length !== 1 || ids[0] === undefined) {
    throw new RerankError("model_unsupported", `the model's tokenizer splits "${text}" into ${ids.length} tokens; not a Qwen3 vocabulary`);
  }
  return ids[0];
}
