import { z } from "zod";
import type { ErrorCode } from "../../errors/errors.js";
import { EmptyInputError } from "../../errors/errors.js";
import type { ErrorFormat } from "./dialect.js";
import { defineDialect, extensionFields, knobsOf, nonEmpty, nullable, queryField, resultExtras, resultExtrasSchema } from "./dialect.js";

/** TEI's status and error_type for each of our codes (an empty `texts` is TEI's own 400 "Empty"). */
const TEI_ERRORS: Record<ErrorCode, [status: number, type: string]> = {
  invalid_request: [422, "Validation"],
  invalid_option: [422, "Validation"],
  payload_too_large: [422, "Validation"],
  model_not_found: [404, "Validation"],
  model_unsupported: [422, "Validation"],
  overloaded: [429, "Overloaded"],
  engine_unavailable: [503, "Unhealthy"],
  engine_failure: [500, "Backend"],
  insufficient_memory: [507, "Backend"],
  timeout: [504, "Backend"],
  cancelled: [499, "Backend"],
};

/** TEI's error body on every error of its dialect: `{"error": message, "error_type": type}`. */
const teiErrorFormat: ErrorFormat = (e) => {
  const [status, type] = e instanceof EmptyInputError ? [400, "Empty"] : TEI_ERRORS[e.code];
  return { status, body: { error: e.message, error_type: type } };
};

/**
 * Hugging Face text-embeddings-inference: POST /rerank with `texts` (and POST /invocations).
 * As in TEI 1.9 and later, an over-long input is truncated unless `truncate: false` (then 422);
 * `truncation_direction: "Left"` keeps the end of the document.
 */
export const tei = defineDialect({
  name: "tei",
  title: "Hugging Face TEI rerank (`texts`)",
  response: z.array(z.object({ index: z.number().int(), score: z.number(), text: z.string().optional(), ...resultExtrasSchema })),
  paths: ["/rerank", "/invocations"],
  claims: (json) => json !== null && typeof json === "object" && "texts" in json,
  errorFormat: teiErrorFormat,
  schema: z
    .object({
      query: queryField,
      texts: z.array(z.string({ error: "must be a string" }), { error: "must be an array" }),
      raw_scores: nullable(z.boolean()),
      return_text: nullable(z.boolean()),
      truncate: nullable(z.boolean()),
      truncation_direction: nullable(z.enum(["right", "Right", "left", "Left"], { error: 'must be "Right" or "Left"' })),
      model: nullable(z.string({ error: "must be a string" })).describe("which served model answers (our extension: TEI serves one)"),
      ...extensionFields,
    })
    .loose(),
  call: (b) => ({
    queries: [b.query],
    documents: [...nonEmpty(b.texts, "texts")],
    knobs: knobsOf(b),
    order: "ranked",
    refuseTruncation: b.truncate === false,
    truncationSide: b.truncation_direction?.toLowerCase() === "left" ? "start" : "end",
  }),
  respond: (b, outcome, { documents }) =>
    outcome.results.map((r) => ({
      index: r.index,
      score: b.raw_scores ? r.logit : r.score,
      ...(b.return_text ? { text: documents[r.index] ?? "" } : {}),
      ...resultExtras(r, b.return_logits),
    })),
});
