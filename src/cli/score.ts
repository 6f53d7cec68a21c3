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
    let first = true;
    const emit = (job: Job, results: RerankResult[]) => {
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
    };
    const rerank = async (job: Job, onProgress?: (done: number) => void) => {
      try {
        // The other knob flags are the reranker's defaults; top_n is the one per-call knob.
        return await reranker.rerank(job.query, job.documents, { topN: flags.topN, onProgress });
      } catch (error) {
        if (error instanceof ValidationError && job.line !== undefined) throw new ValidationError(`${flags.input}:${job.line}: ${error.message}`);
        throw error;
      }
    };
    const callPairs = stack.engineSource.preferredCallPairs;
    if (flags.input && callPairs !== undefined) {
      await scoreConcurrently(flags.input, callPairs, rerank, emit);
      return;
    }
    const jobs: AsyncIterable<Job> | Job[] = flags.input ? readJobs(flags.input) : [{ query: flags.query ?? "", documents: flags.doc ?? [] }];
    for await (const job of jobs) {
      const bar = progressBar(job.documents.length, "scoring");
      try {
        emit(job, await rerank(job, (d) => bar.update(d)));
      } finally {
        bar.stop();
      }
    }
  });
}

/**
 * With a queue, lines are scored several at a time (documents of up to twice `callPairs` in
 * flight), so that the workers have many jobs; results are still written in the file's order.
 */
async function scoreConcurrently(input: string, callPairs: number, rerank: (job: Job, onProgress: (done: number) => void) => Promise<RerankResult[]>, emit: (job: Job, results: RerankResult[]) => void): Promise<void> {
  const jobs: Job[] = [];
  for await (const job of readJobs(input)) jobs.push(job);
  const bar = progressBar(
    jobs.reduce((n, j) => n + j.documents.length, 0),
    "scoring",
  );
  const progress = new Array<number>(jobs.length).fill(0);
  const running: Array<Promise<RerankResult[]>> = [];
  let inFlight = 0;
  let next = 0;
  try {
    for (let written = 0; written < jobs.length; written++) {
      while (next < jobs.length && (running.length === written || inFlight + (jobs[next]?.documents.length ?? 0) <= 2 * callPairs)) {
        const k = next++;
        const job = jobs[k] as Job;
        inFlight += job.documents.length;
        const work = rerank(job, (d) => {
          progress[k] = d;
          bar.update(progress.reduce((a, b) => a + b, 0));
        }).finally(() => (inFlight -= job.documents.length));
        // A later line's failure is reported when its turn comes; until then it must not be unhandled.
        work.catch(() => undefined);
        running.push(work);
      }
      emit(jobs[written] as Job, await (running[written] as Promise<RerankResult[]>));
    }
  } finally {
    bar.stop();
  }
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
