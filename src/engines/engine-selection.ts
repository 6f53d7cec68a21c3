import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { dirname, join } from "node:path";
import { cacheDir } from "../files/cache-dir.js";
import { agreement, missedBars } from "../measure/agreement.js";
import { buildWorkload } from "../measure/workload.js";
import { groupByHead } from "../prompt/groups.js";
import { PromptBuilder } from "../prompt/tokens.js";
import type { ConcreteEngine, Engine, EngineSelection, EngineTrialResult } from "./engine.js";
import type { OnnxPrecision } from "./onnx/precision.js";

/** What the rule of `engine: "auto"` looks at; each field is known before any engine loads. */
export interface RuleFacts {
  /** The GPU llama.cpp found, or false. */
  gpu: string | false;
  /** Why onnxruntime-node cannot be loaded, or undefined when it can. */
  onnxRuntimeMissing: string | undefined;
  /** Settings the caller gave that only the llama.cpp engine has (their flag names). */
  llamaOnlySettings: readonly string[];
  /** A tensor type of the model file the onnx engine cannot read, or undefined. */
  unreadableTensor: string | undefined;
  /** Bytes the onnx engine needs in int8 for this model, and the memory there is. */
  int8Bytes: number;
  memoryBytes: number;
  /** The CPU has x86 VNNI (or AMX): ONNX Runtime's u8×s8 int8 kernel is exact and fast there (hasUnsignedDotProduct). */
  vnni: boolean;
  /** e.g. "x64 avx2 fma avx512f avx512_vnni", for the reason. */
  kernelFlags: string;
}

/**
 * The default engine without a measurement: onnx int8 where it was measured 1.8x-4.6x the llama.cpp
 * engine within the agreement bars (x86 with VNNI, 0.6B to 8B, docs/benchmarks.md), and where it can
 * run this model with these settings; the llama.cpp engine everywhere else (a GPU; no VNNI, where
 * ONNX Runtime's int8 kernels were not measured faster; a file or setting only llama.cpp handles; too
 * little memory). `doctor --engines` measures both here and its choice then wins over this rule.
 */
export function selectByRule(facts: RuleFacts, measuredAt = new Date().toISOString()): EngineSelection {
  const llama = (why: string): EngineSelection => ({ engine: "llama", reason: `llama: ${why}`, source: "rule", trials: [], key: "", measuredAt });
  if (facts.gpu !== false) return llama(`a GPU is present (${facts.gpu}); the onnx engine runs on the CPU only`);
  if (facts.llamaOnlySettings.length > 0) return llama(`${facts.llamaOnlySettings.join(", ")} ${facts.llamaOnlySettings.length > 1 ? "are settings" : "is a setting"} of the llama.cpp engine only`);
  if (facts.onnxRuntimeMissing) return llama(`onnxruntime-node cannot be loaded (${facts.onnxRuntimeMissing}); it installs with qwen-rerank (README, Install)`);
  if (facts.unreadableTensor) return llama(`the onnx engine cannot read this file's ${facts.unreadableTensor} tensors`);
  if (!facts.vnni) return llama(`this CPU (${facts.kernelFlags}) has no VNNI, where the onnx engine's int8 kernels were not measured faster; \`qwen-rerank doctor --engines\` measures both here and keeps the faster`);
  if (facts.int8Bytes > facts.memoryBytes) {
    return llama(`the onnx engine in int8 needs about ${(facts.int8Bytes / 2 ** 30).toFixed(1)} GB for this model, ${(facts.memoryBytes / 2 ** 30).toFixed(1)} GB are free`);
  }
  return {
    engine: "onnx",
    onnxPrecision: "int8",
    reason: `onnx int8: x86 VNNI here (${facts.kernelFlags}), where it was measured 1.8x-4.6x the llama.cpp engine within the agreement bars (docs/benchmarks.md); \`qwen-rerank doctor --engines\` measures it on this machine`,
    source: "rule",
    trials: [],
    key: "",
    measuredAt,
  };
}

/** What decides how many onnx int8 engines the default runs side by side; each is known before any engine loads. */
export interface LayoutFacts {
  /** The threads the engine may use (`threads`, else the machine's available parallelism). */
  threads: number;
  /** Whether ONNX Runtime packs the weights (packsWeights: the 0.6B shape by default). */
  packedWeights: boolean;
  /** One engine's memory for this model in int8 (onnxMemoryEstimate), and the memory there is. */
  int8Bytes: number;
  memoryBytes: number;
}

/**
 * Under this many bytes of int8 weights a pair takes milliseconds, about what handing it to another
 * process and back costs, and a process's start would dominate: one engine (the tiny test models).
 * The 0.6B shape needs ~0.9 GB.
 */
export const ENGINES_SIDE_BY_SIDE_FROM_BYTES = 100 * 2 ** 20;

/**
 * How the default runs the onnx int8 engine: as `threads` engines of one thread each, side by side
 * (src/engines/onnx/engine-pool.ts), where that was measured faster with the same bits (1.85-2x one
 * engine of two threads on calls of many pairs, 0.6B shape, docs/benchmarks.md: ONNX Runtime's
 * threads scale 1.0-1.7x there); else one engine of `threads` threads: one thread; weights not packed
 * (4B, 8B, where side by side was not measured); a model too small to pay for a process; memory for
 * fewer than two engines. The price, said in the reason: each engine's memory, and a lone pair on one
 * thread.
 */
export function onnxLayout(facts: LayoutFacts): { engines: number; reason: string } {
  const one = (why: string) => ({ engines: 1, reason: `one engine of ${facts.threads} thread${facts.threads > 1 ? "s" : ""} (${why})` });
  if (facts.threads < 2) return one("one thread to use");
  if (!facts.packedWeights) return one("weights memory-mapped, not packed: engines side by side were measured with packed weights only");
  if (facts.int8Bytes < ENGINES_SIDE_BY_SIDE_FROM_BYTES) return one("a model this small scores a pair in less time than a process hand-off costs");
  const engines = Math.min(facts.threads, Math.floor(facts.memoryBytes / facts.int8Bytes));
  if (engines < 2) return one(`memory for one engine only: ${(facts.int8Bytes / 2 ** 30).toFixed(1)} GB each, ${(facts.memoryBytes / 2 ** 30).toFixed(1)} GB free`);
  return {
    engines,
    reason:
      `${engines} engines of one thread each, side by side, scoring a call's pairs with the same bits as one engine (measured 1.85-2x one engine of two threads on calls of many pairs, docs/benchmarks.md), ` +
      `${(facts.int8Bytes / 2 ** 30).toFixed(1)} GB each; a lone pair runs on one thread; --onnx-engines 1 (onnxEngines: 1) runs one engine of ${facts.threads} threads`,
  };
}

/** A candidate engine, opened and disposed by the caller's factory. */
type Opener = (choice: ConcreteEngine) => Promise<Engine>;

/** The calibration workload: small enough for a first start, long enough that load noise does not decide. */
const CALIBRATION = { documents: 8, tokens: 160, seed: 7 } as const;

/** An onnx mode must be this much faster than the llama.cpp engine to be chosen (it gives up batch invariance, memory back-off, GPUs). */
export const MIN_GAIN = 1.1;

const nameOf = (c: ConcreteEngine): string => (c.engine === "llama" ? "llama" : `onnx ${c.onnxPrecision ?? "fp32"}`);

/** Where calibrations are kept: `modelsDirectory`/engine-choice.json when given, else ~/.cache/qwen-rerank/engine-choice.json. */
export function selectionCachePath(modelsDirectory?: string): string {
  return join(cacheDir("", modelsDirectory), "engine-choice.json");
}

function readCache(path: string): Record<string, EngineSelection> {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as Record<string, EngineSelection>) : {};
  } catch {
    return {};
  }
}

/** Adds one calibration to the file (written whole under a temporary name: two processes may calibrate at once). */
export function writeCache(path: string, selection: EngineSelection): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const all = { ...readCache(path), [selection.key]: selection };
    const partial = `${path}.partial-${process.pid}`;
    writeFileSync(partial, `${JSON.stringify(all, null, 2)}\n`);
    renameSync(partial, path);
  } catch {
    // A read-only home: the next start calibrates again, nothing worse.
  }
}

/** The kept calibration of this key, if a valid one exists. */
export function cachedSelection(path: string, key: string): EngineSelection | undefined {
  const s = readCache(path)[key];
  if (!s || (s.engine !== "llama" && s.engine !== "onnx") || typeof s.reason !== "string") return undefined;
  return { ...s, source: "measured" };
}

/** Times one candidate on the calibration workload; its log-odds in document order. */
async function trial(open: Opener, choice: ConcreteEngine, maxLength: number): Promise<{ pairsPerSecond: number; logits: number[] }> {
  const engine = await open(choice);
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const work = buildWorkload({ count: CALIBRATION.documents, tokens: CALIBRATION.tokens, seed: CALIBRATION.seed }, (t) => engine.tokenizer.tokenize(t, false).length);
    const pairs = work.documents.map((document) => prompt.build({ query: work.query, document }, maxLength));
    const { groups, indices } = groupByHead(pairs);
    // Warm-up: first-run allocations and kernel packing are not the engine's speed.
    await engine.score(groupByHead(pairs.slice(0, 1)).groups);
    const started = performance.now();
    const { logits } = await engine.score(groups);
    const seconds = (performance.now() - started) / 1000;
    const ordered = new Array<number>(pairs.length).fill(Number.NaN);
    indices.flat().forEach((i, k) => (ordered[i] = logits[k] ?? Number.NaN));
    return { pairsPerSecond: pairs.length / seconds, logits: ordered };
  } finally {
    await engine.dispose();
  }
}

export interface CalibrationInput {
  open: Opener;
  key: string;
  /** Bytes the onnx engine needs per precision (onnxMemoryEstimate); a mode over the machine's memory is not tried. */
  onnxBytes: (precision: OnnxPrecision) => number;
  maxLength: number;
  /** Most memory a candidate may need. Default: the machine's. */
  memoryBytes?: number;
}

/**
 * `doctor --engines` as a decision: times the llama.cpp engine and the onnx modes that fit in
 * memory on the calibration workload, one loaded at a time, checks each onnx mode against onnx
 * fp32's log-odds (the llama.cpp engine's when fp32 does not fit: the 8B shape needs ~30 GB) with
 * the agreement bars of `bench`, and picks the fastest that meets them, if it is at least MIN_GAIN
 * times the llama.cpp engine; else the llama.cpp engine.
 */
export async function calibrate(input: CalibrationInput): Promise<EngineSelection> {
  const memory = input.memoryBytes ?? totalmem();
  const candidates: ConcreteEngine[] = [{ engine: "llama" }, ...(["fp32", "block8", "int8"] as const).map((p) => ({ engine: "onnx" as const, onnxPrecision: p }))];
  const results: Array<EngineTrialResult & { logits?: number[] }> = [];
  for (const c of candidates) {
    const name = nameOf(c);
    if (c.engine === "onnx" && input.onnxBytes(c.onnxPrecision ?? "fp32") > memory) {
      results.push({ name, pairsPerSecond: 0, missed: [], error: `needs about ${(input.onnxBytes(c.onnxPrecision ?? "fp32") / 2 ** 30).toFixed(1)} GB, the machine has ${(memory / 2 ** 30).toFixed(1)} GB` });
      continue;
    }
    try {
      const r = await trial(input.open, c, input.maxLength);
      results.push({ name, pairsPerSecond: r.pairsPerSecond, missed: [], logits: r.logits });
    } catch (error) {
      results.push({ name, pairsPerSecond: 0, missed: [], error: (error as Error).message });
    }
  }
  return decide(results, input.key);
}

/** The decision of `calibrate` from its measurements (pure: tested on its own). */
export function decide(results: ReadonlyArray<EngineTrialResult & { logits?: number[] | undefined }>, key: string): EngineSelection {
  const fp32 = results.find((r) => r.name === "onnx fp32" && r.logits);
  const llama = results.find((r) => r.name === "llama" && r.logits);
  const reference = fp32 ?? llama;
  const trials: EngineTrialResult[] = results.map(({ logits, ...r }) => {
    if (!logits || !reference?.logits || r.name === reference.name) return r;
    const a = agreement(logits, reference.logits);
    const text = `vs ${reference.name === "llama" ? "llama" : "onnx fp32"}: max |dz| ${a.maxAbsDz.toFixed(3)}, tau ${a.kendallTau.toFixed(3)}, top-10 ${a.top10Overlap}/${Math.min(10, logits.length)}`;
    // The llama.cpp engine is the one the project is validated on: its figures are shown, not gated.
    return { ...r, agreement: text, missed: r.name === "llama" ? [] : missedBars(a, logits.length) };
  });
  const measuredAt = new Date().toISOString();
  const summary = trials.map((t) => (t.error ? `${t.name}: ${t.error}` : `${t.name} ${t.pairsPerSecond.toFixed(2)} pairs/s${t.missed.length ? ` (misses ${t.missed.join(", ")})` : ""}`)).join("; ");
  const base = llama ? trials.find((t) => t.name === "llama") : undefined;
  if (!base) {
    // No llama.cpp figure (it failed to load): the fastest onnx mode that meets the bars, if any ran.
    const best = trials.filter((t) => !t.error && t.name !== "llama" && t.missed.length === 0).sort((a, b) => b.pairsPerSecond - a.pairsPerSecond)[0];
    if (!best) return { engine: "llama", reason: `calibration measured no engine: ${summary}`, source: "measured", trials, key, measuredAt };
    return { ...parseName(best.name), reason: `${best.name}: the llama.cpp engine could not be measured. ${summary}`, source: "measured", trials, key, measuredAt };
  }
  const passing = trials.filter((t) => !t.error && t.name !== "llama" && t.missed.length === 0).sort((a, b) => b.pairsPerSecond - a.pairsPerSecond);
  const best = passing[0];
  const against = fp32 ? "onnx fp32" : "the llama.cpp engine (onnx fp32 does not fit)";
  if (best && best.pairsPerSecond >= MIN_GAIN * base.pairsPerSecond) {
    return {
      ...parseName(best.name),
      reason: `${best.name}: ${(best.pairsPerSecond / base.pairsPerSecond).toFixed(2)}x the llama.cpp engine on ${CALIBRATION.documents} calibration documents, within the agreement bars of ${against}. ${summary}`,
      source: "measured",
      trials,
      key,
      measuredAt,
    };
  }
  const why = best ? `the fastest onnx mode within the agreement bars (${best.name}) is ${(best.pairsPerSecond / base.pairsPerSecond).toFixed(2)}x, under ${MIN_GAIN}x` : "no onnx mode ran within the agreement bars";
  return { engine: "llama", reason: `llama: ${why}. ${summary}`, source: "measured", trials, key, measuredAt };
}

function parseName(name: string): ConcreteEngine {
  if (name === "llama") return { engine: "llama" };
  return { engine: "onnx", onnxPrecision: name.slice("onnx ".length) as OnnxPrecision };
}
