import { randomUUID } from "node:crypto";
import { z } from "zod";
import { ValidationError } from "../../errors/errors.js";
import { defineDialect, extensionFields, knobsOf, nullable, resultExtras } from "./dialect.js";

const textOrList = nullable(z.union([z.string(), z.array(z.string())], { error: "must be a string or an array of strings" }));
const asList = (v: string | string[]): string[] => (typeof v === "string" ? [v] : v);

/** vLLM's score API: text_1/text_2 (or queries/documents); 1:1, 1:N, N:N; results in input order. */
export const vllmScore = defineDialect({
  name: "vllm-score",
  paths: ["/score", "/v1/score"],
  schema: z
    .object({
      model: nullable(z.string()),
      text_1: textOrList,
      text_2: textOrList,
      queries: textOrList,
      documents: textOrList,
      ...extensionFields,
    })
    .loose(),
  call: (b) => {
    const left = b.text_1 ?? b.queries;
    const right = b.text_2 ?? b.documents;
    if (left === undefined) throw new ValidationError("is required (or `queries`)", "text_1");
    if (right === undefined) throw new ValidationError("is required (or `documents`)", "text_2");
    const queries = asList(left);
    if (queries.length === 0) throw new ValidationError("must not be empty", "text_1");
    queries.forEach((q, i) => {
      if (q.trim().length === 0) throw new ValidationError("must be a non-empty string", `text_1.${i}`);
    });
    return { queries, documents: asList(right), knobs: knobsOf(b), order: "input" };
  },
  respond: (b, outcome, { modelName }) => ({
    id: `score-${randomUUID()}`,
    object: "list",
    created: Math.floor(Date.now() / 1000),
    model: b.model ?? modelName,
    data: outcome.results.map((r) => ({ index: r.index, object: "score", score: r.score, ...resultExtras(r, b.return_logits) })),
    usage: { prompt_tokens: outcome.tokens, total_tokens: outcome.tokens },
  }),
});
