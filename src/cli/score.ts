import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { Option } from "commander";
import { ValidationError } from "../errors/errors.js";
import type { RerankResult, Reranker } from "../reranker.js";
import { createReranker } from "../reranker.js";
import type { ConfigExtras } from "./config-file.js";
import { applyConfigOptions } from "./config-file.js";
import { addEngineFlags, finiteNumberArg, intArg, languageArg, languageInstructionArg, positiveNumberArg, rerankerOptionsFrom, unitArg } from "./engine-flags.js";
import { progressBar } from "./progress.js";

interface ScoreFlags {
  model?: string;
  query?: string;
  doc?: string[];
  input?: string;
  instruction?: string;
  preset?: string;
  language?: string;
  languageInstruction?: Record<string, string>;
  overflow?: "truncate" | "chunk";
  temperature?: number;
  bias?: number;
  topP?: number;
  threshold?: number;
  topN?: number;
  maxLength?: number;
  json?: boolean;
}

interface Job {
  query: string;
  documents: string[];
  line?: number;
}

async function* readJobs(path: string): AsyncGenerator<Job> {
  const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  let n = 0;
  for await (const raw of lines) {
    n++;
    if (raw.trim() === "") continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new ValidationError(`${path}:${n}: not valid JSON`);
    }
    const o = parsed as { query?: unknown; documents?: unknown };
    if (typeof o?.query !== "string") throw new ValidationError(`${path}:${n}: "query" must be a string`);
    if (!Array.isArray(o.documents) || o.documents.some((d) => typeof d !== "string")) {
      throw new ValidationError(`${path}:${n}: "documents" must be an array of strings`);
    }
    yield { query: o.query, documents: o.documents as string[], line: n };
  }
}

const preview = (s: string, width: number): string => {
  const flat = s.replace(/\s+/g, " ");
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
};

function printTable(job: Job, results: RerankResult[]): void {
  process.stdout.write(`query: ${job.query}\n`);
  process.stdout.write(`${"rank".padStart(4)}  ${"index".padStart(5)}  ${"score".padStart(8)}  ${"logit".padStart(8)}  document\n`);
  results.forEach((r, rank) => {
    const note = r.truncated ? " [truncated]" : r.chunk ? ` [best of ${r.chunk.windows} windows: tokens ${r.chunk.start}-${r.chunk.end}]` : "";
    const doc = preview(r.chunk?.text ?? job.documents[r.index] ?? "", 60) + note;
    process.stdout.write(`${String(rank + 1).padStart(4)}  ${String(r.index).padStart(5)}  ${r.score.toFixed(4).padStart(8)}  ${r.logit.toFixed(3).padStart(8)}  ${doc}\n`);
  });
}

async function run(flags: ScoreFlags, extras: ConfigExtras): Promise<void> {
  if (!flags.model) throw new ValidationError("a model is required (--model or `model:` in --config)");
  const inline = flags.query !== undefined || (flags.doc?.length ?? 0) > 0;
  if (inline && flags.input) throw new ValidationError("use either --query/--doc or --input, not both");
  if (!inline && !flags.input) throw new ValidationError("give --query with one or more --doc, or --input FILE.jsonl");
  if (inline && (flags.query === undefined || !flags.doc?.length)) throw new ValidationError("--query needs at least one --doc (and --doc needs --query)");
  const reranker: Reranker = await createReranker(rerankerOptionsFrom({ ...flags, model: flags.model }, extras));
  try {
    const jobs: AsyncIterable<Job> | Job[] = flags.input ? readJobs(flags.input) : [{ query: flags.query ?? "", documents: flags.doc ?? [] }];
    let first = true;
    for await (const job of jobs) {
      const bar = progressBar(job.documents.length, "scoring");
      let results: RerankResult[];
      try {
        results = await reranker.rerank(job.query, job.documents, {
          topN: flags.topN,
          language: flags.language,
          overflow: flags.overflow,
          onProgress: (d) => bar.update(d),
        });
      } catch (error) {
        if (error instanceof ValidationError && job.line !== undefined) throw new ValidationError(`${flags.input}:${job.line}: ${error.message}`);
        throw error;
      } finally {
        bar.stop();
      }
      if (flags.json) {
        const out = results.map((r) => ({
          index: r.index,
          score: r.score,
          logit: r.logit,
          truncated: r.truncated,
          ...(r.chunk ? { chunk: r.chunk } : {}),
          document: job.documents[r.index],
        }));
        const language = results[0]?.language;
        process.stdout.write(`${JSON.stringify({ query: job.query, ...(language ? { language } : {}), results: out })}\n`);
      } else {
        if (!first) process.stdout.write("\n");
        printTable(job, results);
      }
      first = false;
    }
  } finally {
    await reranker.dispose();
  }
}

export function registerScore(program: Command): void {
  const cmd = program
    .command("score")
    .description("rerank documents for a query (inline or from a JSONL file) and print the scores")
    .option("-m, --model <file>", "GGUF file or hf: URI of a Qwen3-Reranker model (here or in --config)")
    .option("-c, --config <file>", "YAML or JSON config (options in camelCase, presets, languageInstructions, profiles)")
    .option("--profile <name>", "apply the named profile of the config file")
    .option("-q, --query <text>", "the query")
    .option("-d, --doc <text>", "a document (repeat for more)", (v: string, prev: string[] = []) => [...prev, v])
    .option("-i, --input <file>", 'JSONL file, one {"query": ..., "documents": [...]} per line')
    .option("--instruction <text>", "the <Instruct> text (default: the official web-search instruction)")
    .option("--preset <name>", "a scenario preset: its instruction and knobs (see `qwen-rerank presets`)")
    .option("--language <code>", "route the instruction by the query language: auto, or a code such as zh", languageArg)
    .option("--language-instruction <code=text>", "instruction for one query language (repeat)", languageInstructionArg)
    .option("--temperature <t>", "score = sigmoid(logit / t + bias); never changes the order (default: 1)", positiveNumberArg)
    .option("--bias <b>", "offset added to logit / t before the sigmoid, as fitted by `qwen-rerank calibrate` (default: 0)", finiteNumberArg)
    .option("--top-p <p>", "keep the best documents until their softmax(logit/t) weight reaches p (default: 1, off)", unitArg(false))
    .option("--threshold <s>", "drop documents whose score is below s (default: none)", unitArg(true))
    .option("--top-n <n>", "print only the n best", intArg(1))
    .option("--max-length <n>", "max tokens per pair; the document is cut to fit (default: 8192)", intArg(1, 32768))
    .addOption(new Option("--overflow <mode>", "over-long documents: truncate (official) or chunk (best of overlapping windows)").choices(["truncate", "chunk"]))
    .option("--json", "one JSON object per query on stdout");
  addEngineFlags(cmd).action(async () => {
    const extras = applyConfigOptions(cmd);
    await run(cmd.opts<ScoreFlags>(), extras);
  });
}
