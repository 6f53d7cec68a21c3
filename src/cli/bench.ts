import { agreement, missedBars } from "../measure/agreement.js";
import type { OnnxPrecision } from "../engines/onnx/precision.js";
import { ONNX_PRECISIONS } from "../engines/onnx/precision.js";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { readGgufFileInfo } from "node-llama-cpp";
import { Option } from "commander";
import { RerankError, ValidationError } from "../errors/errors.js";
import type { PhaseResult } from "../bench/phases.js";
import { runBaseline, runOurs, runServer } from "../bench/phases.js";
import type { UserWorkload, WorkloadSpec } from "../measure/workload.js";
import { USER_WORKLOADS } from "../measure/workload.js";
import type { ModelFlavor, WeightType } from "../testmodel/generate.js";
import type { ShapeName } from "../testmodel/shapes.js";
import { SHAPES } from "../testmodel/shapes.js";
import { resolveModelSource } from "../engines/llama/model-source.js";
import { cpuFeatures, kernelFlagsLine } from "../engines/cpu-features.js";
import { addEngineFlags, engineOptionsFrom, intArg } from "./flags.js";

interface BenchFlags {
  model?: string;
  baselineModel?: string;
  shape: ShapeName;
  flavor: ModelFlavor;
  type: WeightType;
  seed: number;
  docs: number;
  docTokens: number;
  queries: number;
  pages: number;
  baseline: boolean;
  baselineThreads?: number;
  json?: boolean;
  phase?: "ours" | "baseline" | "server";
  server?: boolean;
  cacheDir: string;
  threads?: number;
  batchSize?: number;
  rounds: number;
  workload?: UserWorkload;
}

async function isRankHead(path: string): Promise<boolean> {
  const info = await readGgufFileInfo(path, { readTensorInfo: false });
  return (info.metadata as unknown as { qwen3?: { pooling_type?: number } }).qwen3?.pooling_type === 4;
}

async function generatedModel(dir: string, shape: ShapeName, flavor: ModelFlavor, type: WeightType, seed: number): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `qwen3-reranker-${shape}-${flavor}-${type}-seed${seed}.gguf`);
  if (!existsSync(path)) {
    process.stderr.write(`generating ${path} ...\n`);
    // Loaded on demand: the generator's tokenizer package takes ~1 s to import, on every CLI start otherwise.
    const { makeTestModel } = await import("../testmodel/generate.js");
    makeTestModel({ shape, flavor, type, seed, out: path });
  }
  return path;
}

/**
 * The onnx precisions whose weights fit in this machine's memory (onnxMemoryEstimate), the others
 * named on stderr: fp32 of the 8B shape needs ~30 GB. Without fp32 the agreement reference is the
 * llama.cpp engine.
 */
async function precisionsThatFit(model: string, wanted: readonly OnnxPrecision[]): Promise<OnnxPrecision[]> {
  const { onnxFit } = await import("../engines/onnx/onnx-fit.js");
  const { bytes } = await onnxFit(model);
  const fit = wanted.filter((p) => bytes(p) <= totalmem());
  for (const p of wanted.filter((p) => !fit.includes(p))) {
    process.stderr.write(`skipping onnx ${p}: about ${(bytes(p) / 2 ** 30).toFixed(1)} GB of weights, this machine has ${(totalmem() / 2 ** 30).toFixed(1)} GB\n`);
  }
  if (fit.length === 0) throw new ValidationError("no onnx precision fits in this machine's memory for this model");
  return fit;
}

/** Runs one phase in a fresh process of this same CLI, so each engine's peak RSS is its own. */
function runPhase(phase: "ours" | "baseline" | "server", args: string[]): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const script = process.argv[1] ?? "";
    const child = spawn(process.execPath, [...process.execArgv, script, "bench", "--phase", phase, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new RerankError("engine_failure", `benchmark phase "${phase}" exited with code ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop() ?? "") as PhaseResult);
      } catch {
        reject(new RerankError("engine_failure", `benchmark phase "${phase}" printed no result`));
      }
    });
  });
}

const fmt = (n: number | null, digits = 1): string => (n === null ? "n/a" : n.toFixed(digits));

/** The result with the median pairs/s of each engine's rounds (the lower middle of an even count). */
function medianOfRounds(rounds: PhaseResult[][]): PhaseResult[] {
  return (rounds[0] ?? []).map((_, i) => {
    const runs = rounds.map((r) => r[i]).filter((r): r is PhaseResult => r !== undefined);
    return [...runs].sort((a, b) => a.pairsPerSecond - b.pairsPerSecond)[Math.floor((runs.length - 1) / 2)] ?? (runs[0] as PhaseResult);
  });
}

/** Each engine's median (over rounds) of its pairs/s divided by the pairs/s of the round's row `reference` (default the first, the llama.cpp engine). */
function medianRatios(rounds: PhaseResult[][], reference = 0): Map<string, number> {
  const ratios = new Map<string, number>();
  (rounds[0] ?? []).forEach((r, i) => {
    const each = rounds.map((round) => (round[i]?.pairsPerSecond ?? Number.NaN) / (round[reference]?.pairsPerSecond ?? Number.NaN)).sort((a, b) => a - b);
    const mid = each.length / 2;
    ratios.set(r.engine, each.length % 2 === 1 ? (each[Math.floor(mid)] ?? Number.NaN) : ((each[mid - 1] ?? Number.NaN) + (each[mid] ?? Number.NaN)) / 2);
  });
  return ratios;
}

/** Each engine's pairs/s per round, and its ratio to the pairs/s of the round's row `reference`, named `against`. */
function printRounds(rounds: PhaseResult[][], reference = 0, against = "the llama.cpp engine"): void {
  const ratios = medianRatios(rounds, reference);
  const first = rounds[0] ?? [];
  process.stdout.write(`\n${rounds.length} rounds, engines interleaved; pairs/s per round (ratio to ${against} in that round):\n`);
  first.forEach((r, i) => {
    const cells = rounds.map((round) => {
      const mine = round[i]?.pairsPerSecond ?? Number.NaN;
      const theirs = round[reference]?.pairsPerSecond ?? Number.NaN;
      return `${mine.toFixed(2)} (${(mine / theirs).toFixed(2)}x)`;
    });
    process.stdout.write(`  ${r.engine}: ${cells.join(", ")}; median ratio ${(ratios.get(r.engine) ?? Number.NaN).toFixed(2)}x\n`);
  });
}

/**
 * `ratios`: each onnx row's median ratio to the llama.cpp engine over interleaved rounds;
 * `baselineRatios`: each row's median ratio to rankAll over rounds (the "vs baseline" column).
 */
function printTable(results: PhaseResult[], spec: WorkloadSpec, ratios?: Map<string, number>, named?: string, baselineRatios?: Map<string, number>): void {
  const base = results.find((r) => r.engine.startsWith("node-llama-cpp"));
  const queries = spec.queries ?? 1;
  process.stdout.write(`workload: ${queries} ${queries === 1 ? "query" : "queries"} x ${spec.count} documents of ~${spec.tokens} tokens${(spec.pages ?? 1) > 1 ? `, in ${spec.pages} pages a query, interleaved` : ""}, default instruction${named ? ` (${named})` : ""}\n`);
  process.stdout.write(`model: ${results[0]?.model ?? "?"}\ncpu: ${cpuFeatures().model}, ${kernelFlagsLine()}\n\n`);
  const header = ["engine", "threads", "seqs", "pairs/s", "request s", "eval tok/s", "eff tok/s", "GFLOP/s", "peak RSS MB", "vs baseline"];
  const rows = results.map((r) => [
    r.engine,
    String(r.threads),
    String(r.sequences),
    fmt(r.pairsPerSecond, 2),
    fmt(r.seconds, 1),
    fmt(r.evaluatedTokensPerSecond),
    fmt(r.effectiveTokensPerSecond),
    fmt(r.gflops),
    fmt(r.peakRssMB, 0),
    base ? `${(baselineRatios?.get(r.engine) ?? r.pairsPerSecond / base.pairsPerSecond).toFixed(2)}x` : "n/a",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  process.stdout.write(`${line(header)}\n${rows.map(line).join("\n")}\n`);
  const ours = results.find((r) => r.engine.startsWith("qwen-rerank llama (") || r.engine.startsWith("qwen-rerank default: llama"));
  const onnx = results.filter((r) => r.engine.startsWith("qwen-rerank onnx") || r.engine.startsWith("qwen-rerank default: onnx"));
  // Each onnx precision against the onnx fp32 run (else the llama.cpp engine) on the same pairs.
  const reference = onnx.find((r) => r.engine.startsWith("qwen-rerank onnx fp32")) ?? ours;
  if (onnx.length > 0 && reference?.logits) {
    process.stdout.write(`\nagreement with ${reference.engine} (log-odds z):\n`);
    for (const r of [ours, ...onnx]) {
      if (!r?.logits || r === reference) continue;
      const a = agreement(r.logits, reference.logits);
      const missed = missedBars(a, r.logits.length);
      process.stdout.write(`  ${r.engine}: max |dz| ${a.maxAbsDz.toExponential(2)}, p99 |dz| ${a.p99AbsDz.toExponential(2)}, Kendall tau ${a.kendallTau.toFixed(4)}, top-10 overlap ${a.top10Overlap}/${Math.min(10, r.logits.length)}; ${missed.length === 0 ? "meets the bars" : `misses the bars: ${missed.join(", ")}`}\n`);
    }
    const exact = reference.logits;
    const passing = onnx.filter((r) => r === reference || (r.logits && missedBars(agreement(r.logits, exact), r.logits.length).length === 0));
    const fastest = passing.sort((a, b) => b.pairsPerSecond - a.pairsPerSecond)[0];
    const ratio = ratios?.get(fastest?.engine ?? "") ?? (fastest && ours ? fastest.pairsPerSecond / ours.pairsPerSecond : Number.NaN);
    if (fastest) process.stdout.write(`fastest onnx mode that meets the bars: ${fastest.engine}, ${ratio.toFixed(2)}x the llama.cpp engine${ratios ? " (median of the rounds' ratios)" : ""}\n`);
  }
  const server = results.find((r) => r.engine.startsWith("qwen-rerank serve"));
  if (ours && server) {
    process.stdout.write(`\nserver / library pairs/s: ${(server.pairsPerSecond / ours.pairsPerSecond).toFixed(3)} (HTTP, scheduler and JSON overhead)\n`);
  }
  if (base && ours) {
    const diff = Math.max(...ours.scores.map((s, i) => Math.abs(s - (base.scores[i] ?? s))));
    process.stdout.write(`\nmax |P(yes) difference| between engines: ${diff.toFixed(4)} (the baseline's template path adds tokens; ours is the official prompt)\n`);
  }
}

/** The flags of the llama.cpp engine only, with their value when they take one: in `bench --engine onnx` they set its llama.cpp row, and the onnx engine refuses them. */
const LLAMA_ONLY_FLAGS = new Map([["--kv-cache-type", 1], ["--gpu-layers", 1], ["--memory-reserve-bytes", 1], ["--flash-attention", 0], ["--no-flash-attention", 0], ["--no-mmap", 0]]);

function withoutLlamaOnly(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const [flag = "", inline] = (args[i] ?? "").split("=", 2);
    const values = LLAMA_ONLY_FLAGS.get(flag);
    if (values === undefined) out.push(args[i] ?? "");
    else if (inline === undefined) i += values;
  }
  return out;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command("bench")
    .description("benchmark scoring: the default engine (with the llama.cpp engine beside it when the default is another), node-llama-cpp's own rankAll (LlamaRankingContext) and optionally the server, side by side in one run; --engine onnx compares the onnx precisions")
    .option("-m, --model <file>", "GGUF or Hugging Face checkpoint to benchmark (default: a generated model of --shape/--flavor/--type)")
    .option("--baseline-model <file>", "rank-head GGUF for the baseline (default: --model when it is rank-head, else the generated rank twin)")
    .addOption(new Option("--shape <shape>", "shape of the generated model").choices(Object.keys(SHAPES)).default("0.6b"))
    .addOption(new Option("--flavor <flavor>", "head of the generated model").choices(["causal", "rank"]).default("rank"))
    .addOption(new Option("--type <type>", "weights of the generated model").choices(["f32", "f16", "q8_0"]).default("q8_0"))
    .option("--seed <n>", "seed of the generated model", intArg(0), 1)
    .addOption(new Option("--workload <name>", `a workload users run, instead of --docs/--doc-tokens: ${Object.entries(USER_WORKLOADS).map(([k, w]) => `${k} (${w.about})`).join("; ")}; --docs still sets the count`).choices(Object.keys(USER_WORKLOADS)))
    .option("--docs <n>", "documents in the workload", intArg(1, 100000), 32)
    .option("--doc-tokens <n>", "tokens per document", intArg(1, 32_000), 256)
    .option("--queries <n>", "distinct queries, each scored against every document (with --pages: the prefix cache's workload)", intArg(1, 1000), 1)
    .option("--pages <n>", "split each query's documents into this many calls, interleaved across queries as a server sees pages", intArg(1, 100000), 1)
    .option("--no-baseline", "skip the node-llama-cpp baseline")
    .option("--baseline-threads <n>", "threads for the baseline (default: the same as ours; 0 = node-llama-cpp's own default, 6)", intArg(0, 1024))
    .option("--json", "print the results as JSON")
    .option("--cache-dir <dir>", "where generated models go", ".cache/models")
    .option("--server", "also run the workload through `qwen-rerank serve` over loopback HTTP (server overhead)")
    .option("--rounds <n>", "run every row (engine, rankAll, server) this many times, interleaved, and report each one's median pairs/s and its median ratio within a round (a shared machine's speed drifts)", intArg(1, 100), 1)
    .addOption(new Option("--phase <phase>").choices(["ours", "baseline", "server"]).hideHelp());
  addEngineFlags(cmd).action(async (flags: BenchFlags & Record<string, unknown>) => {
    const named = flags.workload ? USER_WORKLOADS[flags.workload] : undefined;
    if (named && cmd.getOptionValueSource("docTokens") === "cli") throw new ValidationError(`--workload ${flags.workload} sets the document length (~${named.tokens} tokens): leave out --doc-tokens`);
    const count = named && cmd.getOptionValueSource("docs") !== "cli" ? named.count : flags.docs;
    const docTokens = named?.tokens ?? flags.docTokens;
    const spec: WorkloadSpec = { count, tokens: docTokens, seed: 7, queries: flags.queries, pages: flags.pages };
    if ((flags.queries > 1 || flags.pages > 1) && (flags.baseline || flags.server) && !flags.phase) {
      throw new ValidationError("--queries and --pages time our engines' prefix cache: add --no-baseline (and leave out --server)");
    }
    const engine = engineOptionsFrom(flags);
    const threads = engine.threads ?? availableParallelism();
    // Room for the template and the query on top of the document.
    const contextSize = docTokens + 256;
    const baselineContext = named && "baseline" in named ? named.baseline : undefined;
    if (flags.phase) {
      const model = flags.phase === "baseline" ? flags.baselineModel : flags.model;
      if (!model) throw new ValidationError("internal: phase without a model");
      const ours = { ...engine, threads, maxLength: contextSize, logLevel: "error" as const };
      const result =
        flags.phase === "ours"
          ? await runOurs(model, spec, ours)
          : flags.phase === "server"
            ? await runServer(model, spec, ours)
            : await runBaseline(model, spec, { threads: flags.baselineThreads ?? threads, contextSize: baselineContext?.contextSize ?? contextSize, batchSize: engine.batchSize ?? 512, flashAttention: baselineContext?.flashAttention });
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    // A checkpoint is converted here, once, so every phase times the same GGUF.
    const model = flags.model !== undefined ? await resolveModelSource(flags.model, engine) : await generatedModel(flags.cacheDir, flags.shape, flags.flavor, flags.type, flags.seed);
    let baselineModel = flags.baselineModel;
    if (flags.baseline && !baselineModel) {
      if (!flags.model) baselineModel = flags.flavor === "rank" ? model : await generatedModel(flags.cacheDir, flags.shape, "rank", flags.type, flags.seed);
      else if (await isRankHead(model)) baselineModel = model;
      else throw new ValidationError("the baseline needs a rank-head GGUF: --model is a causal LM, so give --baseline-model FILE or --no-baseline");
    }
    const passThrough = process.argv.slice(process.argv.indexOf("bench") + 1).filter((a, i, all) => a !== "--json" && a !== "--server" && a !== "--rounds" && all[i - 1] !== "--rounds");
    const results: PhaseResult[] = [];
    let ratios: Map<string, number> | undefined;
    let baselineRatios: Map<string, number> | undefined;
    if (flags.engine === "onnx") {
      // The onnx engine next to the llama.cpp engine on the same GGUF, workload and threads; every
      // precision unless one is named.
      const withoutEngine = passThrough.filter((a, i) => !["--engine", "--onnx-precision"].includes(a) && !["--engine", "--onnx-precision"].includes(passThrough[i - 1] ?? ""));
      const rounds: PhaseResult[][] = [];
      const precisions = await precisionsThatFit(model, engine.onnxPrecision ? [engine.onnxPrecision] : ONNX_PRECISIONS);
      for (let round = 0; round < flags.rounds; round++) {
        const results = [await runPhase("ours", [...withoutEngine, "--engine", "llama", "--model", model, "--threads", String(threads)])];
        for (const precision of precisions) {
          results.push(await runPhase("ours", [...withoutLlamaOnly(withoutEngine), "--engine", "onnx", "--onnx-precision", precision, "--model", model, "--threads", String(threads)]));
        }
        rounds.push(results);
      }
      results.push(...medianOfRounds(rounds));
      if (rounds.length > 1) {
        ratios = medianRatios(rounds);
        if (!flags.json) printRounds(rounds);
      }
      if (flags.server) results.push(await runPhase("server", [...passThrough, "--model", model, "--threads", String(threads)]));
      if (flags.baseline && baselineModel) results.push(await runPhase("baseline", [...passThrough, "--baseline-model", baselineModel, "--threads", String(threads)]));
    } else {
      // Every row once a round, in the same order, so that a drifting machine's speed (10-30% between
      // runs minutes apart on a shared VM) weighs on each row alike; ratios are taken within a round.
      const rounds: PhaseResult[][] = [];
      for (let round = 0; round < flags.rounds; round++) {
        const inRound: PhaseResult[] = [];
        const chosen = await runPhase("ours", [...passThrough, "--model", model, "--threads", String(threads)]);
        inRound.push(chosen);
        // The default engine beside the llama.cpp engine on the same GGUF (its agreement reference).
        if (flags.engine === undefined && engine.onnxPrecision === undefined && !chosen.engine.startsWith("qwen-rerank default: llama")) {
          inRound.unshift(await runPhase("ours", [...passThrough, "--engine", "llama", "--model", model, "--threads", String(threads)]));
        }
        if (flags.server) inRound.push(await runPhase("server", [...passThrough, "--model", model, "--threads", String(threads)]));
        if (flags.baseline && baselineModel) inRound.push(await runPhase("baseline", [...passThrough, "--baseline-model", baselineModel, "--threads", String(threads)]));
        rounds.push(inRound);
      }
      results.push(...medianOfRounds(rounds));
      if (rounds.length > 1) {
        const baseline = results.findIndex((r) => r.engine.startsWith("node-llama-cpp"));
        if (baseline >= 0) baselineRatios = medianRatios(rounds, baseline);
        if (results[0]?.engine.startsWith("qwen-rerank llama (")) ratios = medianRatios(rounds);
        if (!flags.json) printRounds(rounds, Math.max(0, baseline), baseline >= 0 ? "rankAll" : "the first row");
      }
    }
    if (flags.json) process.stdout.write(`${JSON.stringify({ workload: spec, results, ...(ratios ? { medianRatioToLlama: Object.fromEntries(ratios) } : {}), ...(baselineRatios ? { medianRatioToBaseline: Object.fromEntries(baselineRatios) } : {}) }, null, 2)}\n`);
    else printTable(results, spec, ratios, flags.workload, baselineRatios);
  });
}
