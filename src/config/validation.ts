import { z } from "zod";
import { ValidationError } from "../errors/errors.js";

const fieldName = (path: ReadonlyArray<PropertyKey>): string => path.map(String).join(".") || "input";

/** Parses with a zod schema and turns the first issue into a ValidationError naming the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue && issue.path.length > 0 ? fieldName(issue.path) : undefined;
  throw new ValidationError(issue?.message ?? "invalid value", prefix && path ? `${prefix}.${path}` : (prefix ?? path ?? "input"));
}

export const querySchema = z.string().refine((s) => s.trim().length > 0, "must be a non-empty string");
export const documentsSchema = z.array(z.string({ error: "must be a string" }));
export const pairsSchema = z.array(z.object({ query: querySchema, document: z.string({ error: "must be a string" }) }), {
  error: "must be an array of {query, document}",
});
