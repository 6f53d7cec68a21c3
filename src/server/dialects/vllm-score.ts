import { randomUUID } from "node:crypto";
import { z } from "zod";
import { EmptyInputError, ValidationError } from "../../errors/errors.js";
import { defineDialect, extensionFields, knobsOf, maxTokensPerDocField, nullable, refusedTruncatePromptTokens, resultExtras, resultExtrasSchema, usageOf, usageSchema } from "./dialect.js";

const textOrList = nullable(z.union([z.string(), z.array(z.string())], { error: "must be a string or an array of strings" }));
const asList = (v: string | string[]): string[] => (typeof v === "string" ? [v] : v);

/**
 * vLLM's score API: the left side as `text_1`, `queries` or `data_1`, the right as `text_2`,
 * `documents`, `items` or `data_2`; 1:1, 1:N, N:N; results in input order. Also SageMaker's
 * POST /invocations for score-shaped bodies.
 */
export const vllmScore = defineDialect({
  name: "vllm-score",
  title: "vLLM score: pairs in input order",
  response: z.object({
    id: z.string(),
    object: z.literal("list"),
    created: z.number().int(),
    model: z.string(),
    data: z.array(z.object({ index: z.number().int(), object: z.literal("score"), score: z.number(), ...resultExtrasSchema })),
    usage: usageSchema,
  }),
  paths: ["/score", "/v1/score", "/invocations"],
  claims: (json) => json !== null && typeof json === "object" && ("text_1" in json || "data_1" in json || "queries" in json),
  schema: z
    .object({
      model: nullable(z.string()),
      text_1: textOrList,
      text_2: textOrList,
      queries: textOrList,
      documents: textOrList,
      items: textOrList,
      data_1: textOrList,
      data_2: textOrList,
      max_tokens_per_doc: maxTokensPerDocField,
      use_activation: nullable(z.boolean()),
      truncate_prompt_tokens: refusedTruncatePromptTokens,
      ...extensionFields,
    })
    .loose(),
  call: (b) => {
    const left = b.text_1 ?? b.queries ?? b.data_1;
    const right = b.text_2 ?? b.documents ?? b.items ?? b.data_2;
    if (left === undefined) throw new ValidationError("is required (or `queries`, `data_1`)", "text_1");
    if (right === undefined) throw new ValidationError("is required (or `documents`, `items`, `data_2`)", "text_2");
    const queries = asList(left);
    if (queries.length === 0) throw new EmptyInputError("text_1");
    queries.forEach((q, i) => {
      if (q.trim().length === 0) throw new ValidationError("must be a non-empty string", `text_1.${i}`);
    });
    const documents = asList(right);
    if (documents.length === 0) throw new EmptyInputError("text_2");
    return { queries, documents, knobs: knobsOf(b), order: "input", maxTokensPerDoc: b.max_tokens_per_doc };
  },
  respond: (b, outcome, { modelName }) => ({
    id: `score-${randomUUID()}`,
    object: "list" as const,
    created: Math.floor(Date.now() / 1000),
    model: b.model ?? modelName,
    data: outcome.results.map((r) => ({ index: r.index, object: "score" as const, score: b.use_activation === false ? r.logit : r.score, ...resultExtras(r, b.return_logits) })),
    usage: usageOf(outcome),
  }),
});
