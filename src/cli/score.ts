import type { Command } from "commander";
import { ValidationError } from "../errors/errors.js";
import { FileLineError, parseJsonLine, readLines } from "../files/lines.js";
import type { RerankResult } from "../reranker.js";
import { Reranker } from "../reranker.js";
import type { ConfigExtras } from "./config-file.js";
import { applyConfigOptions } from "./config-file.js";
import type { ModelFlagValues } from "./flags.js";
import { addModelFlags, addQueueFlags } from "./flags.js";
import { withModel } from "./model.js";
import { progressBar } from "./progress.js";

interface ScoreFlags extends ModelFlagValues {
  query?: string;
  doc?: string[];
  input?: string;
  topN?: number;
  json?: boolean;
}

interface Job {
  query: string;
  documents: string[];
  line?: number;
}

async function* readJobs(path: string): AsyncGenerator<Job> {
  for await (const { text, line } of readLines(path)) {
    const o = parseJsonLine(path, line, text);
    if (typeof o.query !== "string") throw new FileLineError(path, line, '"query" must be a string');
    if (!Array.isArray(o.documents) || o.documents.some((d) => typeof d !== "string")) throw new FileLineError(path, line, '"documents" must be an array of strings');
    yield { query: o.query, documents: o.documents as string[], line };
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
  await withModel("score", flags, extras, async (stack) => {
    const reranker = new Reranker(stack);
    const jobs: AsyncIterable<Job> | Job[] = flags.input ? readJobs(flags.input) : [{ query: flags.query ?? "", documents: flags.doc ?? [] }];
    let first = true;
    for await (const job of jobs) {
      const bar = progressBar(job.documents.length, "scoring");
      let results: RerankResult[];
      try {
        // The other knob flags are the reranker's defaults; top_n is the one per-call knob.
        results = await reranker.rerank(job.query, job.documents, { topN: flags.topN, onProgress: (d) => bar.update(d) });
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
  });
}

export function registerScore(program: Command): void {
  const cmd = program
    .command("score")
    .description("rerank documents for a query (inline or from a JSONL file) and print the scores")
    .option("-q, --query <text>", "the query")
    .option("-d, --doc <text>", "a document (repeat for more)", (v: string, prev: string[] = []) => [...prev, v])
    .option("-i, --input <file>", 'JSONL file, one {"query": ..., "documents": [...]} per line')
    .option("--json", "one JSON object per query on stdout");
  addQueueFlags(addModelFlags(cmd, "score")).action(async () => {
    const extras = applyConfigOptions(cmd);
    await run(cmd.opts<ScoreFlags>(), extras);
  });
}
