import { z } from "zod";
import { defineDialect, extensionFields, knobsOf, nullable, queryField, resultExtras } from "./dialect.js";

/** Hugging Face text-embeddings-inference: POST /rerank with `texts`. */
export const tei = defineDialect({
  name: "tei",
  paths: ["/rerank"],
  claims: (json) => json !== null && typeof json === "object" && "texts" in json,
  schema: z
    .object({
      query: queryField,
      texts: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
      raw_scores: nullable(z.boolean()),
      return_text: nullable(z.boolean()),
      // Off unless true, as in TEI: an over-long input is refused (413), not cut.
      truncate: nullable(z.boolean()),
      truncation_direction: nullable(z.enum(["right", "Right"], { error: "only right truncation keeps the official prompt" })),
      ...extensionFields,
    })
    .loose(),
  call: (b) => ({ queries: [b.query], documents: b.texts, knobs: knobsOf(b), order: "ranked", refuseTruncation: b.truncate !== true }),
  respond: (b, outcome, { documents }) =>
    outcome.results.map((r) => ({
      index: r.index,
      score: b.raw_scores ? r.logit : r.score,
      ...(b.return_text ? { text: documents[r.index] } : {}),
      ...resultExtras(r, b.return_logits),
    })),
});
