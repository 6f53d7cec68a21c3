import { uniformStream } from "../testmodel/rng.js";

/** The standard benchmark workload: one query and `count` documents of about `tokens` tokens. */
export interface WorkloadSpec {
  /** Default 32. */
  count: number;
  /** Tokens per document (at least; whole words). Default 256. */
  tokens: number;
  /** Default 7. */
  seed: number;
  /** Distinct queries, each scored against every document (the prefix cache's case). Default 1. */
  queries?: number | undefined;
  /** Calls each query's documents are split into, interleaved across queries as a server sees pages (page 1 of every query, then page 2, ...). Default 1. */
  pages?: number | undefined;
}

export interface Workload {
  query: string;
  /** `spec.queries` queries, the first being `query`. */
  queries: string[];
  documents: string[];
}

const WORDS = (
  "the of and to in is for that on with as by it this from at are be or an was which search query document model " +
  "result retrieval relevant passage answer system data information index ranking score language network learning " +
  "city river history science energy market policy health school water music travel capital country population " +
  "research method evidence report analysis quality design process support service product price customer review"
).split(" ");

/**
 * Deterministic English-like documents, sized with the model's own tokenizer so that every
 * engine in a benchmark run sees the same text and the same token counts.
 */
export function buildWorkload(spec: WorkloadSpec, countTokens: (text: string) => number): Workload {
  const next = uniformStream(spec.seed);
  const documents: string[] = [];
  for (let d = 0; d < spec.count; d++) {
    const words: string[] = [];
    // Grow in steps, then word by word, to avoid tokenizing a long text hundreds of times.
    while (countTokens(words.join(" ")) < spec.tokens) {
      const step = Math.max(1, Math.floor((spec.tokens - countTokens(words.join(" "))) / 2));
      for (let i = 0; i < step; i++) words.push(WORDS[Math.floor(next() * WORDS.length)] ?? "the");
    }
    documents.push(`${words.join(" ")}.`);
  }
  const query = "What is the most relevant passage about the history of the capital city and its river?";
  const topics = ["markets", "schools", "music", "energy", "health", "travel", "research", "policy"];
  const queries = Array.from({ length: Math.max(1, spec.queries ?? 1) }, (_, q) => (q === 0 ? query : `${query.slice(0, -1)}, and its ${topics[(q - 1) % topics.length] ?? "data"} (${q})?`));
  return { query, queries, documents };
}

/** The workloads users run, as `bench --workload NAME` sizes them; rankAll is configured as the tools that use it do. */
export const USER_WORKLOADS = {
  search: { count: 100, tokens: 128, about: "1 query, 100 passages of ~128 tokens (a search results page)" },
  rag: { count: 40, tokens: 512, about: "1 query, 40 chunks of ~512 tokens (a RAG retriever's candidates)" },
  notes: {
    count: 20,
    tokens: 900,
    about: "1 query, 20 note chunks of ~900 tokens; rankAll with a 4096-token context and flash attention, as local note-search tools configure it",
    baseline: { contextSize: 4096, flashAttention: true },
  },
} as const satisfies Record<string, { count: number; tokens: number; about: string; baseline?: { contextSize: number; flashAttention: boolean } }>;

export type UserWorkload = keyof typeof USER_WORKLOADS;
