import type { EngineTrialResult } from "../engines/engine.js";
import { percentileOf } from "../monitor/monitor.js";

type CheckStatus = "ok" | "warn" | "fail";

/** One finding of `qwen-rerank doctor`: "fail" blocks (exit 1), "warn" costs quality or speed. */
export interface Check {
  id: string;
  status: CheckStatus;
  message: string;
  /** Flags or config lines to paste; null when there is nothing to change. */
  fix: string | null;
}

const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(2)} GiB`;

/** Instruction sets of the CPU that decide llama.cpp's speed, as /proc/cpuinfo names them. */
export function cpuCheck(flags: ReadonlySet<string>, model: string, device: string): Check {
  const has = (f: string) => flags.has(f);
  const level = has("avx512_vnni") ? "AVX-512 VNNI" : has("avx512f") ? "AVX-512" : has("avx2") ? "AVX2" : flags.size === 0 ? "unknown" : "no AVX2";
  const message = `${model || "CPU"}: ${level}${device === "cpu" ? "" : `; scoring on ${device}`}`;
  if (level === "no AVX2" && device === "cpu") {
    return { id: "cpu", status: "warn", message: `${message}: llama.cpp's CPU kernels are several times slower without AVX2`, fix: "run on a CPU with AVX2 (or a GPU: --gpu auto)" };
  }
  return { id: "cpu", status: "ok", message, fix: null };
}

/**
 * The onnx engine, measured with its weights loaded: whether one pair of `maxLength` tokens (its
 * keys and values as `kvCache` keeps them and a run's attention, `pairBytes`) fits in the memory
 * left. Such a pair is refused before it runs (insufficient_memory), so this warns ahead of the
 * first long request.
 */
export function onnxMemoryCheck(o: { maxLength: number; pairBytes: (tokens: number) => number; kvCache: "fp32" | "int8"; roomBytes: number; limitedBy: string }): Check {
  const needed = o.pairBytes(o.maxLength);
  const message = `one pair of max_length ${o.maxLength} tokens needs ${gib(needed)} (${o.kvCache} keys and values, a run's attention scores) beside the loaded weights; ${gib(o.roomBytes)} left (${o.limitedBy})`;
  if (needed <= o.roomBytes * 0.9) return { id: "memory", status: "ok", message, fix: null };
  let fits = 0;
  for (let t = 256; t < o.maxLength && o.pairBytes(t) <= o.roomBytes * 0.9; t += 256) fits = t;
  const others = `${o.kvCache === "fp32" ? "--onnx-precision int8: 8-bit keys and values, or " : ""}--engine llama: flash attention`;
  return {
    id: "memory",
    status: "warn",
    message: `${message}: longer pairs than ${fits > 0 ? `about ${fits}` : "a few hundred"} tokens will be refused`,
    fix: fits >= 512 ? `--max-length ${fits} (or ${others})` : `${others}; or free memory`,
  };
}

/**
 * Whether the weights and the KV cache of `sequences` x `maxLength` tokens fit in the free memory
 * of the device that holds them, and if not, the settings that do.
 */
export function memoryCheck(o: {
  device: string;
  modelBytes: number;
  kvPerToken: number;
  maxLength: number;
  sequences: number;
  freeBytes: number;
  totalBytes: number;
}): Check {
  const kv = o.kvPerToken * o.maxLength * o.sequences;
  const where = o.device === "cpu" ? "RAM" : "VRAM";
  const message = `weights ${gib(o.modelBytes)} + KV cache ${gib(kv)} (${o.sequences} x ${o.maxLength} tokens) vs ${gib(o.freeBytes)} free of ${gib(o.totalBytes)} ${where}`;
  if (o.modelBytes > o.totalBytes) {
    return { id: "memory", status: "fail", message: `${message}: the weights alone do not fit`, fix: "use a smaller quantisation (q8_0) or shape" };
  }
  // Leave a tenth of free memory for compute buffers and everything else.
  const budget = o.freeBytes * 0.9 - o.modelBytes;
  if (kv <= budget) return { id: "memory", status: "ok", message, fix: null };
  const sequences = Math.floor(budget / (o.kvPerToken * o.maxLength));
  if (sequences >= 1) {
    return { id: "memory", status: "warn", message: `${message}: the engine will back off to fewer sequences`, fix: `--sequences ${sequences}` };
  }
  const length = Math.floor(Math.max(0, budget) / o.kvPerToken / 256) * 256;
  return {
    id: "memory",
    status: length >= 512 ? "warn" : "fail",
    message: `${message}: not even one sequence of ${o.maxLength} tokens fits`,
    fix: length >= 512 ? `--sequences 1 --max-length ${length}` : "free memory, or use --kv-cache-type q8_0 and a smaller shape",
  };
}

export function threadsCheck(threads: number, mathCores: number, logicalCores: number): Check {
  const message = `${threads} threads; llama.cpp counts ${mathCores} math cores (${logicalCores} logical)`;
  if (mathCores > 0 && threads > mathCores) {
    return { id: "threads", status: "warn", message: `${message}: more threads than math cores slow matrix products down`, fix: `--threads ${mathCores}` };
  }
  return { id: "threads", status: "ok", message, fix: null };
}

/**
 * The guide's two symptoms of useless scores, told apart by the log-odds: scores piled up near 0
 * or 1 while the log-odds still spread (a temperature fixes it), or log-odds that barely differ
 * between documents of a query (the model cannot tell them apart: instruction or data problem).
 */
export function scoreShapeChecks(queries: ReadonlyArray<{ logits: readonly number[]; scores: readonly number[] }>, temperature: number): Check[] {
  const scores = queries.flatMap((q) => q.scores);
  const logits = queries.flatMap((q) => q.logits);
  if (scores.length === 0) return [];
  const saturated = scores.filter((s) => s > 0.95 || s < 0.05).length / scores.length;
  // Spread inside queries (what ranking uses), not across them.
  const withinStd = queries
    .filter((q) => q.logits.length >= 2)
    .map((q) => {
      const m = q.logits.reduce((a, b) => a + b, 0) / q.logits.length;
      return Math.sqrt(q.logits.reduce((a, z) => a + (z - m) ** 2, 0) / (q.logits.length - 1));
    });
  const spread = withinStd.length > 0 ? withinStd.reduce((a, b) => a + b, 0) / withinStd.length : 0;
  const checks: Check[] = [];
  const flat = withinStd.length > 0 && spread < 0.25;
  checks.push(
    flat
      ? {
          id: "flat-logits",
          status: "warn",
          message: `log-odds barely differ between the documents of a query (mean spread ${spread.toFixed(3)}): the model cannot tell them apart; a temperature would not help`,
          fix: '--instruction "<what makes a document relevant in your task, in English>" (or --preset NAME; see `qwen-rerank presets`), then `qwen-rerank eval` it',
        }
      : { id: "flat-logits", status: "ok", message: `log-odds spread inside a query: ${spread.toFixed(3)} (mean standard deviation)`, fix: null },
  );
  if (saturated > 0.5 && !flat) {
    // The temperature that puts the 90th percentile of |z| at score 0.95 (|z| / T = 2.94).
    const t = Math.max(temperature, percentileOf(logits.map(Math.abs), 90) / 2.944);
    checks.push({
      id: "score-saturation",
      status: "warn",
      message: `${(saturated * 100).toFixed(0)}% of scores are below 0.05 or above 0.95 while the log-odds spread: thresholds cannot separate them`,
      fix: `--temperature ${t.toPrecision(2)} (or fit one on labelled data: qwen-rerank calibrate)`,
    });
  } else {
    checks.push({ id: "score-saturation", status: "ok", message: `${(saturated * 100).toFixed(0)}% of scores below 0.05 or above 0.95`, fix: null });
  }
  return checks;
}

/** Documents cut to fit max_length lose their ends; the official cut is silent, so say how often. */
export function truncationCheck(pairLengths: readonly number[], maxLength: number, trainContext: number): Check {
  if (pairLengths.length === 0) return { id: "truncation", status: "ok", message: "no data", fix: null };
  const cut = pairLengths.filter((n) => n > maxLength).length;
  const rate = cut / pairLengths.length;
  const p95 = percentileOf(pairLengths, 95);
  const message = `${cut} of ${pairLengths.length} pairs (${(rate * 100).toFixed(1)}%) exceed max_length ${maxLength}; 95% of pairs are within ${p95} tokens`;
  if (rate <= 0.05) return { id: "truncation", status: "ok", message, fix: null };
  const suggested = Math.min(trainContext - 1, Math.ceil(p95 / 256) * 256);
  return { id: "truncation", status: "warn", message: `${message}: their ends are never seen`, fix: suggested > maxLength ? `--max-length ${suggested} (or --overflow chunk)` : "--overflow chunk" };
}

/** The model was trained on English instructions. */
export function instructionLanguageCheck(instruction: string, nonEnglish: boolean): Check {
  if (!nonEnglish) return { id: "instruction-language", status: "ok", message: "the instruction is in English, as in training", fix: null };
  return {
    id: "instruction-language",
    status: "warn",
    message: `the instruction is not in English ("${instruction.slice(0, 60)}"): the model was trained on English instructions and usually scores a little worse`,
    fix: '--instruction "<the same in English>" (name the query language in it if needed: "Given a Chinese web search query, ...")',
  };
}

export interface LanguageFigures {
  language: string;
  queries: number;
  /** Mean score of the documents of its queries. */
  scoreMean: number;
  /** nDCG@10 of the reranked lists, when the data has labels. */
  ndcg?: number | undefined;
}

/**
 * Per-language gaps: with labels, nDCG@10 more than 0.1 below the best language; without, a
 * score mean more than 0.2 below (a hint only: the documents differ too).
 */
export function languageGapCheck(figures: readonly LanguageFigures[], routing: boolean): Check {
  const langs = figures.filter((f) => f.queries > 0);
  if (langs.length < 2) {
    return { id: "language-gap", status: "ok", message: langs.length === 1 ? `one query language: ${langs[0]?.language}` : "no data", fix: null };
  }
  const labelled = langs.every((f) => f.ndcg !== undefined);
  const value = (f: LanguageFigures) => (labelled ? (f.ndcg ?? 0) : f.scoreMean);
  const best = Math.max(...langs.map(value));
  const gap = labelled ? 0.1 : 0.2;
  const lagging = langs.filter((f) => best - value(f) > gap);
  const describe = langs.map((f) => `${f.language} ${value(f).toFixed(3)} (${f.queries} ${f.queries === 1 ? "query" : "queries"})`).join(", ");
  const measure = labelled ? "nDCG@10" : "mean score";
  if (lagging.length === 0) return { id: "language-gap", status: "ok", message: `${measure} by query language: ${describe}`, fix: null };
  const example = lagging[0]?.language ?? "xx";
  return {
    id: "language-gap",
    status: "warn",
    message: `${measure} by query language: ${describe}; ${lagging.map((f) => f.language).join(", ")} trail${lagging.length === 1 ? "s" : ""} by more than ${gap}`,
    fix: routing
      ? `review the instruction of ${example} (languageInstructions.${example} in the config), then compare with qwen-rerank eval`
      : `--language auto --language-instruction "${example}=Given a web search query in ${example}, retrieve relevant passages that answer the query"`,
  };
}

/** One engine and mode of the calibration (`doctor --engines`), with the flags that select it. */
export interface EngineTrial extends EngineTrialResult {
  flags: string;
}

/**
 * Which engine and mode to run on this machine: the fastest trial that meets the agreement bars.
 * Warns (with the flags) when that is not the engine in use and is at least 10% faster.
 */
export function engineChoiceCheck(trials: readonly EngineTrial[], current: string): Check {
  const listing = trials
    .map((t) => (t.error ? `${t.name}: ${t.error}` : `${t.name} ${t.pairsPerSecond.toFixed(2)} pairs/s${t.agreement ? ` (${t.agreement}${t.missed.length > 0 ? `; misses: ${t.missed.join(", ")}` : ""})` : ""}`))
    .join("; ");
  const passing = trials.filter((t) => !t.error && t.missed.length === 0).sort((a, b) => b.pairsPerSecond - a.pairsPerSecond);
  const best = passing[0];
  if (!best) return { id: "engine-choice", status: "warn", message: `no engine measured: ${listing}`, fix: null };
  const mine = trials.find((t) => t.name === current);
  const gain = mine && !mine.error ? best.pairsPerSecond / mine.pairsPerSecond : Number.POSITIVE_INFINITY;
  const message = `fastest meeting the agreement bars: ${best.name}${mine && best !== mine ? ` (${gain.toFixed(2)}x ${current})` : ""}. ${listing}`;
  if (best.name === current || gain < 1.1) return { id: "engine-choice", status: "ok", message, fix: null };
  return { id: "engine-choice", status: "warn", message, fix: best.flags };
}
