import type { Command } from "commander";
import type { CallKnobs } from "../config/knobs.js";
import { extensionFields, knobsFromWire, wireOfField } from "../config/knobs.js";
import { ValidationError } from "../errors/errors.js";
import { FileLineError, parseJsonLine, readLines } from "../files/lines.js";
import { documentTexts } from "./input-documents.js";
import type { RerankReport } from "../reranker.js";
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
  /** The line's own `id`, written back beside its results. */
  id?: string | number;
  /** The line's own knobs (instruction, top_n, top_p, ...: the HTTP extension fields). */
  knobs?: CallKnobs;
}

/** The keys a line of `score --input` may carry: the query, its documents, an id, and per-line knobs. */
const LINE_KEYS = new Set(["query", "documents", "id", "top_n", ...Object.keys(extensionFields)]);

/**
 * Lines of `{"query", "documents", "id"?, knobs?}`; a document is a string or `{"text": ...}` (the
 * shape eval's data sets use, other keys such as `relevance` ignored). An unknown key is an error,
 * so that a misspelt knob is never silently dropped.
 */
async function* readJobs(path: string): AsyncGenerator<Job> {
  for await (const { text, line } of readLines(path)) {
    const o = parseJsonLine(path, line, text);
    if (typeof o.query !== "string") throw new FileLineError(path, line, '"query" must be a string');
    const documents = documentTexts(path, line, o.documents);
    const unknown = Object.keys(o).find((k) => !LINE_KEYS.has(k));
    if (unknown !== undefined) throw new FileLineError(path, line, `unknown key "${unknown}" (a line takes query, documents, id, top_n and the knobs ${Object.keys(extensionFields).join(", ")})`);
    if (o.id !== undefined && typeof o.id !== "string" && typeof o.id !== "number") throw new FileLineError(path, line, '"id" must be a string or a number');
    const knobs: CallKnobs = { ...knobsFromWire(o), ...(o.top_n !== undefined && o.top_n !== null ? { topN: o.top_n as number } : {}) };
    yield { query: o.query, documents, line, ...(o.id !== undefined ? { id: o.id } : {}), knobs };
  }
}

const preview = (s: string, width: number): string => {
  const flat = s.replace(/\s+/g, " ");
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
};

function printTable(job: Job, { results, omittedReason }: RerankReport): void {
  process.stdout.write(`query: ${job.query}${job.id !== undefined ? `  (id ${job.id})` : ""}\n`);
  if (results.length === 0) {
    process.stdout.write(`no document returned: ${omittedReason ?? "none was given"}\n`);
    return;
  }
  process.stdout.write(`${"rank".padStart(4)}  ${"index".padStart(5)}  ${"score".padStart(8)}  ${"logit".padStart(8)}  document\n`);
  results.forEach((r, rank) => {
    const note = r.truncated ? " [truncated]" : r.chunk ? ` [best of ${r.chunk.windows} windows: tokens ${r.chunk.start}-${r.chunk.end}]` : "";
    const doc = preview(r.chunk?.text ?? job.documents[r.index] ?? "", 60) + note;
    process.stdout.write(`${String(rank + 1).padStart(4)}  ${String(r.index).padStart(5)}  ${r.score.toFixed(4).padStart(8)}  ${r.logit.toFixed(3).padStart(8)}  ${doc}\n`);
  });
  if (omittedReason) process.stdout.write(`(${omittedReason})\n`);
}

async function run(flags: ScoreFlags, extras: ConfigExtras): Promise<void> {
  if (!flags.model) throw new ValidationError("a model is required (--model or `model:` in --config)");
  const inline = flags.query !== undefined || (flags.doc?.length ?? 0) > 0;
  if (inline && flags.input) throw new ValidationError("use either --query/--doc or --input, not both");
  if (!inline && !flags.input) throw new ValidationError("give --query with one or more --doc, or --input FILE.jsonl");
  if (inline && (flags.query === undefined || !flags.doc?.length)) throw new ValidationError("--query needs at least one --doc (and --doc needs --query)");
  const lonePair = inline && flags.doc?.length === 1;
  await withModel("score", flags, extras, async (stack) => {
    const reranker = new Reranker(stack);
    let first = true;
    const emit = (job: Job, report: RerankReport) => {
      const { results, omitted } = report;
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
        const left = omitted.topP + omitted.threshold + omitted.topN > 0 ? { omitted: { top_p: omitted.topP, threshold: omitted.threshold, top_n: omitted.topN, reason: report.omittedReason } } : {};
        process.stdout.write(`${JSON.stringify({ ...(job.id !== undefined ? { id: job.id } : {}), query: job.query, ...(language ? { language } : {}), results: out, ...left })}\n`);
      } else {
        if (!first) process.stdout.write("\n");
        printTable(job, report);
      }
      first = false;
    };
    const rerank = async (job: Job, onProgress?: (done: number) => void) => {
      try {
        // The other knob flags are the reranker's defaults; top_n is the one per-call knob; a line's own knobs win.
        return await reranker.rerankReport(job.query, job.documents, { topN: flags.topN, ...job.knobs, onProgress });
      } catch (error) {
        // A line's fields are told by their JSON names (max_length), the flags' by theirs.
        if (error instanceof ValidationError && job.line !== undefined) throw new ValidationError(`${flags.input}:${job.line}: ${error.renamed(wireOfField).message}`);
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
  }, { lonePair });
}

/**
 * With a queue, lines are scored several at a time (documents of up to twice `callPairs` in
 * flight), so that the workers have many jobs; results are still written in the file's order.
 */
async function scoreConcurrently(input: string, callPairs: number, rerank: (job: Job, onProgress: (done: number) => void) => Promise<RerankReport>, emit: (job: Job, report: RerankReport) => void): Promise<void> {
  const jobs: Job[] = [];
  for await (const job of readJobs(input)) jobs.push(job);
  const bar = progressBar(
    jobs.reduce((n, j) => n + j.documents.length, 0),
    "scoring",
  );
  const progress = new Array<number>(jobs.length).fill(0);
  const running: Array<Promise<RerankReport>> = [];
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
      emit(jobs[written] as Job, await (running[written] as Promise<RerankReport>));
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
    .option("-i, --input <file>", 'JSONL file ("-": standard input), one {"query": ..., "documents": [strings or {"text": ...}], "id"?, "top_n"?, "instruction"?, ...} per line')
    .option("--json", "one JSON object per query on stdout");
  addQueueFlags(addModelFlags(cmd, "score")).action(async () => {
    const extras = applyConfigOptions(cmd);
    await run(cmd.opts<ScoreFlags>(), extras);
  });
}
