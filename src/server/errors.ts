import type { Context } from "hono";
import type { RerankError } from "../errors/errors.js";
import { OverloadedError } from "../errors/errors.js";
import { httpStatusOf } from "../errors/status.js";

/** The body of every error answer: `{"error": {"type", "code", "message"}}`. */
function errorBody(error: RerankError): { error: { type: string; code: string; message: string } } {
  const status = httpStatusOf[error.code];
  const type = status >= 500 ? "server_error" : status === 429 ? "rate_limit_error" : status === 401 ? "authentication_error" : "invalid_request_error";
  return { error: { type, code: error.code, message: error.message } };
}

/** The one way the server answers an error: its status, its body, and Retry-After when overloaded. */
export function errorResponse(c: Context, error: RerankError): Response {
  if (error instanceof OverloadedError) c.header("retry-after", String(error.retryAfterSeconds));
  return c.json(errorBody(error), httpStatusOf[error.code] as 400);
}

/** 401 in our error shape (not a RerankError code: authentication happens before any request is parsed). */
export function unauthorized(c: Context): Response {
  return c.json({ error: { type: "authentication_error", code: "unauthorized", message: "missing or invalid API key (Authorization: Bearer <key>)" } }, 401);
}
