import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ValidationError } from "../errors/errors.js";
import { FileLineError, parseJsonLine, readLines } from "../files/lines.js";
import type { Qrels, Run } from "./trec.js";
import { readQrels, readRun, topK } from "./trec.js";

export interface Candidate {
  docid: string;
  text: string;
  /** The first stage's score (from the run; for JSONL, higher for earlier documents). */
  firstStage: number;
}

export interface EvalQuery {
  qid: string;
  text: string;
  /** The documents to rerank, in the first stage's order. */
  candidates: Candidate[];
}

/** Queries with their candidates, the judgements, and the first stage's run over the same candidates. */
export interface EvalSet {
  queries: EvalQuery[];
  qrels: Qrels;
  firstStage: Run;
  /** What was read, for reports. */
  source: string;
}

export interface LoadOptions {
  /** A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or a JSONL file. */
  dataset: string;
  /** First-stage TREC run whose top-k documents are reranked (required for BEIR folders). */
  run?: string | undefined;
  /** Candidates per query taken from the run. Default 100. */
  topK?: number | undefined;
  /** BEIR split (qrels/SPLIT.tsv). Default "test". */
  split?: string | undefined;
  /** Qrels file instead of the BEIR folder's (TREC or BEIR format). Default: the folder's. */
  qrels?: string | undefined;
}

const text = (value: unknown): string => (typeof value === "string" ? value : "");
const idOf = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : undefined);

/** Loads the queries, candidates and judgements of an evaluation, from BEIR + a run or from JSONL. */
export async function loadEvalSet(options: LoadOptions): Promise<EvalSet> {
  const info = await stat(options.dataset).catch(() => undefined);
  if (!info) throw new ValidationError(`cannot read ${options.dataset}: no such file or folder`, "dataset");
  if (info.isDirectory()) return loadBeir(options);
  if (options.run !== undefined) throw new ValidationError("a JSONL dataset carries its own candidates; --run is for BEIR folders", "run");
  return loadJsonl(options.dataset, options.topK);
}

/**
 * The simple JSONL format: one `{"query": "...", "documents": [{"text": "...", "relevance": 2}, ...]}`
 * per line, with optional `id` on queries and documents. Candidates keep the file's order as the
 * first stage; relevance defaults to 0.
 */
async function loadJsonl(path: string, k: number | undefined): Promise<EvalSet> {
  const queries: EvalQuery[] = [];
  const qrels: Qrels = new Map();
  const firstStage: Run = new Map();
  const qids = new Set<string>();
  for await (const { text: raw, line } of readLines(path)) {
    const o = parseJsonLine(path, line, raw);
    if (typeof o.query !== "string") throw new FileLineError(path, line, '"query" must be a string');
    if (!Array.isArray(o.documents) || o.documents.length === 0) throw new FileLineError(path, line, '"documents" must be a non-empty array');
    const qid = idOf(o.id) ?? String(line);
    if (qids.has(qid)) throw new FileLineError(path, line, `query id ${qid} appears twice`);
    qids.add(qid);
    const judged = new Map<string, number>();
    const candidates: Candidate[] = [];
    const docs = o.documents.slice(0, k ?? o.documents.length);
    docs.forEach((d: unknown, i) => {
      const doc = typeof d === "string" ? { text: d } : (d as Record<string, unknown>);
      if (doc === null || typeof doc !== "object" || typeof doc.text !== "string") throw new FileLineError(path, line, `documents[${i}]: "text" must be a string`);
      const rel = doc.relevance ?? 0;
      if (typeof rel !== "number" || !Number.isInteger(rel)) throw new FileLineError(path, line, `documents[${i}]: "relevance" must be an integer`);
      const docid = idOf(doc.id) ?? String(i);
      if (judged.has(docid)) throw new FileLineError(path, line, `documents[${i}]: document id ${docid} appears twice`);
      judged.set(docid, rel);
      candidates.push({ docid, text: doc.text, firstStage: docs.length - i });
    });
    qrels.set(qid, judged);
    queries.push({ qid, text: o.query, candidates });
    firstStage.set(
      qid,
      candidates.map((c) => ({ docid: c.docid, score: c.firstStage })),
    );
  }
  if (queries.length === 0) throw new ValidationError(`${path}: no queries`, "dataset");
  return { queries, qrels, firstStage, source: path };
}

async function loadBeir(options: LoadOptions): Promise<EvalSet> {
  const dir = options.dataset;
  if (options.run === undefined) {
    throw new ValidationError(`a BEIR folder needs --run FIRST_STAGE (a TREC run of a first-stage retriever such as BM25) to take candidates from`, "run");
  }
  const qrelsPath = options.qrels ?? join(dir, "qrels", `${options.split ?? "test"}.tsv`);
  const qrels = await readQrels(qrelsPath);
  // Only judged queries are evaluated (as trec_eval does), so the others are not reranked at all.
  const run = new Map([...topK(await readRun(options.run), options.topK ?? 100)].filter(([qid]) => qrels.has(qid)));
  if (run.size === 0) throw new ValidationError(`no query of ${options.run} is judged in ${qrelsPath}`, "run");

  const queryText = new Map<string, string>();
  const queriesPath = join(dir, "queries.jsonl");
  for await (const { text: raw, line } of readLines(queriesPath)) {
    const o = parseJsonLine(queriesPath, line, raw);
    const id = idOf(o._id);
    if (id === undefined || typeof o.text !== "string") throw new FileLineError(queriesPath, line, 'expected {"_id": ..., "text": ...}');
    if (run.has(id)) queryText.set(id, o.text);
  }
  const missingQuery = [...run.keys()].find((q) => !queryText.has(q));
  if (missingQuery !== undefined) throw new ValidationError(`query ${missingQuery} of ${options.run} is not in ${queriesPath}`, "run");

  // The corpus may be far larger than memory allows: keep only the documents the run names.
  const needed = new Set([...run.values()].flatMap((entries) => entries.map((e) => e.docid)));
  const docText = new Map<string, string>();
  const corpusPath = join(dir, "corpus.jsonl");
  for await (const { text: raw, line } of readLines(corpusPath)) {
    // A cheap look at the id first: parsing every line of a large corpus costs most of the time.
    const m = /"_id"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(raw);
    if (m?.[1] !== undefined && !m[1].includes("\\") && !needed.has(m[1])) continue;
    const o = parseJsonLine(corpusPath, line, raw);
    const id = idOf(o._id);
    if (id === undefined) throw new FileLineError(corpusPath, line, 'expected {"_id": ..., "title": ..., "text": ...}');
    if (!needed.has(id)) continue;
    // BEIR's convention for rerankers: title and text joined by a space.
    docText.set(id, `${text(o.title)} ${text(o.text)}`.trim());
  }
  const missingDocs = [...needed].filter((d) => !docText.has(d));
  if (missingDocs.length > 0) {
    throw new ValidationError(`${missingDocs.length} document(s) of ${options.run} are not in ${corpusPath} (e.g. ${missingDocs.slice(0, 3).join(", ")})`, "run");
  }
  const queries: EvalQuery[] = [...run].map(([qid, entries]) => ({
    qid,
    text: queryText.get(qid) ?? "",
    candidates: entries.map((e) => ({ docid: e.docid, text: docText.get(e.docid) ?? "", firstStage: e.score })),
  }));
  return { queries, qrels, firstStage: run, source: `${dir} (${options.split ?? "test"}) + ${options.run}` };
}
