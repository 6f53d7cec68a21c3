import { existsSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { memoryRoom } from "../engines/memory-room.js";
import { heldKvBytes, kvBytesPerToken } from "../engines/llama/kv-bytes.js";
import type { Command } from "commander";
import { buildWorkload } from "../measure/workload.js";
import type { Check, EngineTrial } from "../doctor/checks.js";
import {
  cpuCheck,
  engineChoiceCheck,
  onnxMemoryCheck,
  instructionLanguageCheck,
  languageGapCheck,
  memoryCheck,
  scoreShapeChecks,
  threadsCheck,
  truncationCheck,
} from "../doctor/checks.js";
import type { MemoryBackoff } from "../engines/engine.js";
import { LlamaEngine } from "../engines/llama/llama-engine.js";
import { cpuFeatures } from "../engines/cpu-features.js";
import { describeShape } from "../engines/llama/memory-ladder.js";
import { RerankError, ValidationError, isRerankError } from "../errors/errors.js";
import { loadEvalSet } from "../eval/dataset.js";
import type { EvalSet } from "../eval/dataset.js";
import { evaluateRun, parseMeasures } from "../eval/metrics.js";
import type { Run } from "../eval/trec.js";
import { FileLineError, parseJsonLine, readLines } from "../files/lines.js";
import { documentTexts } from "./input-documents.js";
import { addCandidateFlags } from "./eval-common.js";
import type { Pipeline } from "../pipeline/pipeline.js";
import type { RerankerOptions, ScoringStack } from "../compose/stack.js";
import { openStack } from "../compose/stack.js";
import { detectLanguage, isNonEnglishInstruction } from "../prompt/language.js";
import type { ConfigExtras } from "./config-file.js";
import { applyConfigOptions } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, intArg, rerankerOptionsFrom } from "./flags.js";

interface DoctorFlags extends ModelFlagValues {
  engines?: boolean;
  dataset?: string;
  run?: string;
  qrels?: string;
  split: string;
  topK: number;
  input?: string;
  maxQueries: number;
  json?: boolean;
}

/** Queries to diagnose, with labels when the data has them. */
interface DoctorData {
  queries: Array<{ qid: string; text: string; documents: string[]; docids: string[] }>;
  labels: EvalSet["qrels"] | undefined;
}

const YES_ID = 9693;
const NO_ID = 2152;

async function readData(flags: DoctorFlags): Promise<DoctorData | undefined> {
  if (flags.dataset && flags.input) throw new ValidationError("give --dataset or --input, not both");
  if (flags.dataset) {
    const set = await loadEvalSet({ dataset: flags.dataset, run: flags.run, qrels: flags.qrels, split: flags.split, topK: flags.topK });
    const queries = set.queries.slice(0, flags.maxQueries).map((q) => ({ qid: q.qid, text: q.text, documents: q.candidates.map((c) => c.text), docids: q.candidates.map((c) => c.docid) }));
    return { queries, labels: set.qrels };
  }
  if (flags.input) {
    if (!existsSync(flags.input)) throw new ValidationError(`cannot read ${flags.input}: no such file`, "input");
    const queries: DoctorData["queries"] = [];
    for await (const { text, line } of readLines(flags.input)) {
      const o = parseJsonLine(flags.input, line, text);
      if (typeof o.query !== "string") throw new FileLineError(flags.input, line, '"query" must be a string');
      const documents = documentTexts(flags.input, line, o.documents);
      queries.push({ qid: String(line), text: o.query, documents, docids: documents.map((_, i) => String(i)) });
      if (queries.length >= flags.maxQueries) break;
    }
    return { queries, labels: undefined };
  }
  return undefined;
}

/** The checks that need the loaded model: runtime, memory, model file and settings. */
async function engineChecks(stack: ScoringStack, backoffs: readonly MemoryBackoff[]): Promise<Check[]> {
  const checks: Check[] = [];
  const info = stack.engine.info;
  const engine = stack.engine;
  const chosen = info.selection;
  const graphs = { cache: "its graphs loaded from the on-disk cache", built: "its graphs built at this start and kept on disk", memory: "its graphs built in memory (not kept)" } as const;
  checks.push({
    id: "engine",
    status: "ok",
    message: `${info.backend}${chosen ? `, ${chosen.source === "asked" ? "as asked" : chosen.source === "measured" ? "measured fastest here" : "by the default rule"}: ${chosen.reason}` : ""}${info.graphs ? `; ${graphs[info.graphs]}` : ""}`,
    fix: chosen?.source === "rule" ? "qwen-rerank doctor --engines (measures every engine here and keeps the fastest as the default)" : null,
  });
  if (!(engine instanceof LlamaEngine)) {
    const cpu = cpuFeatures();
    checks.push(cpuCheck(cpu.flags, cpu.model, "cpu"));
    checks.push({ id: "backend", status: "ok", message: `${info.backend}, numerics: ${info.numerics}`, fix: null });
    const { OnnxEngine } = await import("../engines/onnx/onnx-engine.js");
    if (engine instanceof OnnxEngine) {
      const room = memoryRoom();
      checks.push(onnxMemoryCheck({ maxLength: info.maxSequenceLength, pairBytes: (t) => engine.longPairBytes(t), kvCache: engine.kvCacheType, roomBytes: room.bytes, limitedBy: room.limitedBy }));
    }
  }
  if (engine instanceof LlamaEngine) {
    const d = await engine.diagnostics();
    const cpu = cpuFeatures();
    checks.push(cpuCheck(cpu.flags, cpu.model, d.device));
    const variant = /CPU\s*:\s*([^|]*(?:\|[^|]*){0,12})/.exec(d.systemInfo)?.[1]?.trim() ?? d.systemInfo;
    checks.push({
      id: "backend",
      status: "ok",
      message: `llama.cpp (${d.buildType} binary) on ${d.device}${d.gpuDevices.length > 0 ? ` (${d.gpuDevices.join(", ")})` : ""}, ${d.gpuLayers} layers offloaded; CPU features compiled in: ${variant}`,
      fix: null,
    });
    checks.push(threadsCheck(d.threads, d.cpuMathCores, availableParallelism()));
    const onGpu = d.device !== "cpu" && d.vram !== undefined && d.gpuLayers > 0;
    if (info.shape) {
      checks.push(
        memoryCheck({
          device: onGpu ? d.device : "cpu",
          modelBytes: d.modelBytes,
          kvPerToken: kvBytesPerToken(info.shape, d.kvCacheType),
          maxLength: d.asked.contextSize,
          sequences: d.asked.sequences,
          // Measured with the model loaded: what the engine holds now was free before it. On the
          // CPU, the tightest of the process's limits (ulimit, cgroup, available memory).
          freeBytes: (onGpu && d.vram ? d.vram.free : memoryRoom().bytes) + heldKvBytes(info.shape, d.kvCacheType, info.capacity),
          totalBytes: onGpu && d.vram ? d.vram.total : totalmem(),
        }),
      );
    }
    const last = backoffs[backoffs.length - 1];
    if (last) {
      const c = info.capacity;
      checks.push({
        id: "memory-backoff",
        status: "warn",
        message: `llama.cpp could not allocate ${describeShape(d.asked)} (${last.reason}); the engine runs with ${describeShape(c)}`,
        fix: `--sequences ${c.sequences} --batch-size ${c.batchSize}${c.contextSize < d.asked.contextSize ? ` --max-length ${c.contextSize}` : ""}`,
      });
    }
    const type = d.fileType?.replace(/^MOSTLY_|^ALL_/, "") ?? "unknown";
    const lowBits = /^(Q2|Q3|Q4|IQ|TQ|Q5_0|Q5_1)/.test(type);
    checks.push({
      id: "quantization",
      status: lowBits ? "warn" : "ok",
      message: `weights ${type} (${(d.modelBytes / 1024 ** 3).toFixed(2)} GiB)${lowBits ? ": at 4 bits or less, scores move noticeably from the original model's" : ""}`,
      fix: lowBits ? "compare with a Q8_0 file on your data: qwen-rerank eval --model A.gguf ... and --model B.gguf" : null,
    });
  }
  const llama = engine instanceof LlamaEngine;
  checks.push({
    id: "model-flavor",
    // Parallel sequences matter on a GPU; on a CPU one sequence is the default anyway.
    status: llama && info.scoringPath === "rank-pooling" && !info.backend.includes("(cpu)") ? "warn" : "ok",
    message: !llama
      ? `${info.flavor === "rank" ? "rank-head GGUF, scored from its rank head's" : "causal GGUF, scored from the LM head's"} yes/no rows at each document's last token (the onnx engine's graph)`
      : info.scoringPath === "lm-head"
        ? `${info.flavor === "rank" ? "rank-head" : "causal"} GGUF, scored from the LM head's yes/no logits at the last position (${info.sequences} parallel sequence${info.sequences === 1 ? "" : "s"})`
        : "rank-head GGUF whose head is not the LM head's yes/no rows: scored through llama.cpp's rank pooling, one sequence at a time (no parallel sequences)",
    fix: null,
  });
  const ids = info.yesTokenId === YES_ID && info.noTokenId === NO_ID;
  checks.push({
    id: "yes-no-tokens",
    status: ids ? "ok" : "warn",
    message: `"yes" = token ${info.yesTokenId}, "no" = token ${info.noTokenId}${ids ? " (the Qwen3 vocabulary's)" : `: Qwen3's are ${YES_ID} and ${NO_ID}; is this a Qwen3-Reranker?`}`,
    fix: null,
  });
  return checks;
}

function settingsChecks(stack: ScoringStack, flags: DoctorFlags): Check[] {
  const checks: Check[] = [];
  const pipeline = stack.pipeline;
  const knobs = pipeline.resolve({});
  const info = stack.engine.info;
  const asked = flags.maxLength ?? knobs.maxLength;
  checks.push(
    asked > info.trainContext - 1
      ? { id: "context-length", status: "warn", message: `max_length ${asked} exceeds the model's context of ${info.trainContext} tokens; ${knobs.maxLength} is used`, fix: `--max-length ${info.trainContext - 1}` }
      : { id: "context-length", status: "ok", message: `max_length ${knobs.maxLength} of the model's ${info.trainContext}`, fix: null },
  );
  const instructions = [knobs.instruction, ...Object.values(flags.languageInstruction ?? {})];
  const foreign = instructions.find((i) => isNonEnglishInstruction(i));
  checks.push(instructionLanguageCheck(foreign ?? knobs.instruction, foreign !== undefined));
  if (flags.preset !== undefined) {
    const preset = pipeline.presets.get(flags.preset);
    const overridden = (["instruction", "temperature", "topP"] as const).filter((k) => flags[k] !== undefined && preset[k] !== undefined);
    checks.push(
      overridden.length > 0
        ? { id: "preset", status: "warn", message: `preset "${preset.name}" sets ${overridden.join(", ")}, and the command line sets ${overridden.length === 1 ? "it" : "them"} again: the preset's value${overridden.length === 1 ? " is" : "s are"} not used`, fix: `drop ${overridden.map((k) => (k === "topP" ? "--top-p" : `--${k}`)).join(" ")}, or drop --preset` }
        : { id: "preset", status: "ok", message: `preset "${preset.name}" applies as defined`, fix: null },
    );
  }
  return checks;
}

/** Scores the data, then the score-shape, truncation, language and speed checks. */
async function dataChecks(pipeline: Pipeline, data: DoctorData, routing: boolean): Promise<Check[]> {
  const knobs = pipeline.resolve({});
  const perQuery: Array<{ logits: number[]; scores: number[] }> = [];
  const lengths: number[] = [];
  const byLanguage = new Map<string, { qids: string[]; scores: number[] }>();
  const run: Run = new Map();
  let pairs = 0;
  let tokens = 0;
  const started = performance.now();
  for (const q of data.queries) {
    if (q.documents.length === 0) continue;
    const result = await pipeline.run({ queries: [q.text], documents: q.documents, order: "input" });
    const overhead = pipeline.planner.overhead(result.knobs.instruction, q.text);
    for (const d of q.documents) lengths.push(overhead + pipeline.planner.countTokens(d));
    perQuery.push({ logits: result.results.map((r) => r.logit), scores: result.results.map((r) => r.score) });
    pairs += result.pairs;
    tokens += result.tokens;
    const language = detectLanguage(q.text);
    const figures = byLanguage.get(language) ?? { qids: [], scores: [] };
    figures.qids.push(q.qid);
    figures.scores.push(...result.results.map((r) => r.score));
    byLanguage.set(language, figures);
    run.set(q.qid, result.results.map((r) => ({ docid: q.docids[r.index] ?? String(r.index), score: r.logit })));
  }
  const seconds = (performance.now() - started) / 1000;
  const checks = [...scoreShapeChecks(perQuery, knobs.temperature), truncationCheck(lengths, knobs.maxLength, pipeline.info.trainContext)];
  const ndcg = parseMeasures(["ndcg_cut.10"]);
  const languages = [...byLanguage].map(([language, f]) => {
    let value: number | undefined;
    if (data.labels) {
      const labels = data.labels;
      const subset: Run = new Map(f.qids.flatMap((qid) => (run.has(qid) ? [[qid, run.get(qid) ?? []] as const] : [])));
      value = evaluateRun(new Map([...labels].filter(([qid]) => subset.has(qid))), subset, ndcg).mean["ndcg_cut_10"];
    }
    return { language, queries: f.qids.length, scoreMean: f.scores.reduce((a, b) => a + b, 0) / Math.max(1, f.scores.length), ndcg: value };
  });
  checks.push(languageGapCheck(languages, routing));
  checks.push(speedCheck(pipeline, pairs, tokens, seconds, "your data"));
  return checks;
}

function speedCheck(pipeline: Pipeline, pairs: number, tokens: number, seconds: number, what: string): Check {
  const c = pipeline.info.capacity;
  return {
    id: "speed",
    status: "ok",
    message: `${(pairs / seconds).toFixed(2)} pairs/s, ${Math.round(tokens / seconds)} tokens/s on ${what} (${pairs} pairs of ${Math.round(tokens / Math.max(1, pairs))} tokens on average; ${describeShape(c)})`,
    fix: null,
  };
}

/** Without data: a short measurement on 8 generated documents of about 200 tokens. */
async function shortSpeedCheck(pipeline: Pipeline): Promise<Check> {
  const w = buildWorkload({ count: 8, tokens: 200, seed: 7 }, (t) => pipeline.planner.countTokens(t));
  await pipeline.run({ queries: [w.query], documents: w.documents.slice(0, 1), order: "input" });
  const started = performance.now();
  const r = await pipeline.run({ queries: [w.query], documents: w.documents, order: "input" });
  return speedCheck(pipeline, r.pairs, r.tokens, (performance.now() - started) / 1000, "8 generated documents");
}

/**
 * `doctor --engines`: every engine and mode that fits, on the same 8 generated documents, one loaded
 * at a time, against onnx fp32's log-odds; shown, and the choice kept as the default engine's
 * measurement for this model, CPU and thread count.
 */
async function engineTrials(options: RerankerOptions): Promise<EngineTrial[]> {
  const { calibrateEngines } = await import("../engines/open-engine.js");
  const { trials } = await calibrateEngines(options);
  return trials.map((t) => ({ ...t, flags: t.name === "llama" ? "--engine llama" : `--engine onnx --onnx-precision ${t.name.slice("onnx ".length)}` }));
}

const mark = { ok: "ok  ", warn: "WARN", fail: "FAIL" } as const;

function printChecks(checks: readonly Check[]): void {
  for (const c of checks) {
    process.stdout.write(`${mark[c.status]}  ${c.id.padEnd(20)}  ${c.message}\n`);
    if (c.fix) process.stdout.write(`${" ".repeat(26)}fix: ${c.fix}\n`);
  }
  const count = (s: Check["status"]) => checks.filter((c) => c.status === s).length;
  process.stdout.write(`\n${count("fail")} failed, ${count("warn")} warnings, ${count("ok")} ok\n`);
}

/** Runs every check; a model that cannot load or fit is a failed check, not a crash. */
export async function diagnose(flags: DoctorFlags, extras: ConfigExtras): Promise<Check[]> {
  if (!flags.model) throw new ValidationError("a model is required (--model or `model:` in --config)");
  // Bad data is bad input (exit 2) before any model load.
  const data = await readData(flags);
  const backoffs: MemoryBackoff[] = [];
  const options = { ...rerankerOptionsFrom("doctor", { ...flags, model: flags.model }, extras), onMemoryBackoff: (e: MemoryBackoff) => backoffs.push(e) };
  let stack: ScoringStack;
  try {
    stack = await openStack(options);
  } catch (error) {
    if (!isRerankError(error) || (error.code !== "model_unsupported" && error.code !== "insufficient_memory" && error.code !== "engine_unavailable")) throw error;
    const id = error.code === "insufficient_memory" ? "memory" : error.code === "engine_unavailable" ? "backend" : "model-file";
    const fix = error.code === "insufficient_memory" ? "--max-length 2048 --sequences 1 (or a smaller --kv-cache-type)" : error.code === "model_unsupported" ? "use a Qwen3-Reranker GGUF (causal or rank-head)" : "reinstall with npm ci";
    return [{ id, status: "fail", message: error.message, fix }];
  }
  let checks: Check[];
  const inUse = stack.engine.info.selection ?? { engine: "llama", onnxPrecision: undefined };
  try {
    checks = [...(await engineChecks(stack, backoffs)), ...settingsChecks(stack, flags)];
    const routing = stack.pipeline.resolve({}).language !== undefined;
    checks.push(...(data ? await dataChecks(stack.pipeline, data, routing) : [await shortSpeedCheck(stack.pipeline)]));
  } catch (error) {
    if (isRerankError(error) && error.code === "insufficient_memory") return [{ id: "memory", status: "fail", message: error.message, fix: "--max-length 2048 --sequences 1" }];
    throw error;
  } finally {
    await stack.dispose();
  }
  if (flags.engines) {
    const current = inUse.engine === "onnx" ? `onnx ${inUse.onnxPrecision ?? "int8"}` : "llama";
    checks.push(engineChoiceCheck(await engineTrials(options), current));
  }
  return checks;
}

export function registerDoctor(program: Command): void {
  const cmd = program
    .command("doctor")
    .description("diagnose a setup (machine, model file, settings, and your data's scores) and print fixes to paste")
    .option("--dataset <path>", "labelled data: BEIR folder (with --run) or JSONL of {query, documents: [{text, relevance}]} (per-language nDCG)");
  addCandidateFlags(cmd)
    .option("-i, --input <file>", "unlabelled data: JSONL of {query, documents: [...]}, as `score --input` reads")
    .option("--max-queries <n>", "queries of the data to score", intArg(1), 50)
    .option("--engines", "also time every engine and mode (llama; onnx fp32, block8, int8) on 8 generated documents, name the fastest that keeps onnx fp32's ranking (the agreement bars of `bench --engine onnx`), and keep it as the default engine for this model, CPU and thread count")
    .option("--json", "print {checks: [{id, status, message, fix}]} on stdout");
  addModelFlags(cmd, "doctor");
  cmd.action(async () => {
    const extras = applyConfigOptions(cmd);
    const flags = cmd.opts<DoctorFlags>();
    const checks = await diagnose(flags, extras).catch((error: unknown) => {
      throw isRerankError(error) ? error : new RerankError("engine_failure", String(error));
    });
    if (flags.json) process.stdout.write(`${JSON.stringify({ checks }, null, 2)}\n`);
    else printChecks(checks);
    process.exitCode = checks.some((c) => c.status === "fail") ? 1 : 0;
  });
}
