import type { ErrorCode } from "./errors.js";

/** HTTP status per error code (docs/architecture.md, "Errors"). */
export const httpStatusOf: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_option: 422,
  payload_too_large: 413,
  model_not_found: 404,
  model_unsupported: 422,
  engine_unavailable: 503,
  engine_failure: 500,
  // WebDAV's "Insufficient Storage": the server cannot hold what this request needs.
  insufficient_memory: 507,
  overloaded: 429,
  timeout: 504,
  cancelled: 499,
};

/** CLI exit code per error code: 2 for anything the user can fix by changing the command. */
export const exitCodeOf: Record<ErrorCode, number> = {
  invalid_request: 2,
  invalid_option: 2,
  payload_too_large: 2,
  model_not_found: 2,
  model_unsupported: 2,
  engine_unavailable: 3,
  engine_failure: 1,
  insufficient_memory: 1,
  overloaded: 3,
  timeout: 3,
  cancelled: 130,
};
