import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { FileLineError, readLines } from "../files/lines.js";

/** Relevance judgements: query id -> document id -> graded relevance (unjudged = absent). */
export type Qrels = Map<string, Map<string, number>>;

export interface RunEntry {
  docid: string;
  score: number;
}

/** A ranking per query (entries in any order; `trecOrder` sorts them as trec_eval does). */
export type Run = Map<string, RunEntry[]>;

const INTEGER = /^[+-]?\d+$/;

/**
 * Reads relevance judgements: TREC qrels (`qid iter docno rel`) or BEIR's TSV
 * (`query-id corpus-id score`, with or without its header line). Relevance must be an integer;
 * the same (query, document) judged twice differently is an error.
 */
export async function readQrels(path: string): Promise<Qrels> {
  const qrels: Qrels = new Map();
  let first = true;
  for await (const { text, line } of readLines(path)) {
    const f = text.trim().split(/\s+/);
    const isHeader = first && f.length === 3 && !INTEGER.test(f[2] ?? "");
    first = false;
    if (isHeader) continue;
    if (f.length !== 4 && f.length !== 3) throw new FileLineError(path, line, `expected "qid iter docno rel" (TREC) or "query-id corpus-id score" (BEIR), got ${f.length} fields`);
    const [qid, docid, rel] = f.length === 4 ? [f[0], f[2], f[3]] : [f[0], f[1], f[2]];
    if (qid === undefined || docid === undefined || rel === undefined || !INTEGER.test(rel)) throw new FileLineError(path, line, `relevance must be an integer, got "${rel ?? ""}"`);
    let judged = qrels.get(qid);
    if (!judged) qrels.set(qid, (judged = new Map<string, number>()));
    const value = Number(rel);
    const before = judged.get(docid);
    if (before !== undefined && before !== value) throw new FileLineError(path, line, `document ${docid} of query ${qid} is judged twice (${before} and ${value})`);
    judged.set(docid, value);
  }
  return qrels;
}

/**
 * Reads a TREC run (`qid Q0 docno rank score tag`). As in trec_eval the rank column is ignored
 * (order comes from the score); a document listed twice for one query is an error.
 */
export async function readRun(path: string): Promise<Run> {
  const run: Run = new Map();
  const seen = new Map<string, Set<string>>();
  for await (const { text, line } of readLines(path)) {
    const f = text.trim().split(/\s+/);
    if (f.length !== 6) throw new FileLineError(path, line, `expected "qid Q0 docno rank score tag", got ${f.length} fields`);
    const [qid, , docid, , rawScore] = f as [string, string, string, string, string, string];
    const score = Number(rawScore);
    if (rawScore === "" || !Number.isFinite(score)) throw new FileLineError(path, line, `score must be a finite number, got "${rawScore}"`);
    let docs = seen.get(qid);
    if (!docs) {
      seen.set(qid, (docs = new Set()));
      run.set(qid, []);
    }
    if (docs.has(docid)) throw new FileLineError(path, line, `document ${docid} is listed twice for query ${qid}`);
    docs.add(docid);
    run.get(qid)?.push({ docid, score });
  }
  return run;
}

/** trec_eval's order: score descending, ties broken by document id descending. */
export function trecOrder(entries: readonly RunEntry[]): RunEntry[] {
  return [...entries].sort((a, b) => b.score - a.score || (a.docid < b.docid ? 1 : a.docid > b.docid ? -1 : 0));
}

/** The k best entries of every query, in trec_eval's order. */
export function topK(run: Run, k: number): Run {
  return new Map([...run].map(([qid, entries]) => [qid, trecOrder(entries).slice(0, k)]));
}

/** Writes a run in TREC format (ranks from 1 in trec_eval's order; scores with full precision). */
export async function writeRun(path: string, run: Run, tag: string): Promise<void> {
  const out = createWriteStream(path, "utf8");
  for (const [qid, entries] of run) {
    let rank = 0;
    for (const e of trecOrder(entries)) {
      if (!out.write(`${qid} Q0 ${e.docid} ${++rank} ${e.score} ${tag}\n`)) await once(out, "drain");
    }
  }
  out.end();
  await once(out, "finish");
}
