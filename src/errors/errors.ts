/** Machine-readable error codes; each maps to one HTTP status and one CLI exit code (see status.ts). */
export type ErrorCode =
  | "invalid_request"
  | "invalid_option"
  | "payload_too_large"
  | "model_not_found"
  | "model_unsupported"
  | "engine_unavailable"
  | "engine_failure"
  | "insufficient_memory"
  | "overloaded"
  | "timeout"
  | "cancelled";

/** The one error type of qwen-rerank: everything a user can see carries a code and a plain message. */
export class RerankError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RerankError";
  }
}

/** Bad input from the caller (a field, an option, a file). */
export class ValidationError extends RerankError {
  /** What is wrong, without the field's name. */
  readonly detail: string;
  constructor(message: string, readonly field?: string) {
    super("invalid_request", field ? `${field}: ${message}` : message);
    this.name = "ValidationError";
    this.detail = message;
  }

  /**
   * The same error with its field named in the caller's words (`--max-length` on the command line,
   * `max_length` in a request body); `name` answers undefined to keep the library's own name.
   */
  renamed(name: (field: string) => string | undefined): ValidationError {
    const field = this.field === undefined ? undefined : name(this.field);
    if (field === undefined || field === this.field) return this;
    return this instanceof EmptyInputError ? new EmptyInputError(field) : new ValidationError(this.detail, field);
  }
}

/** A required list came empty (TEI answers these 400 "Empty", other validation errors 422). */
export class EmptyInputError extends ValidationError {
  constructor(field: string) {
    super("must not be empty", field);
    this.name = "EmptyInputError";
  }
}

/** The queue is full: retry after `retryAfterSeconds`. */
export class OverloadedError extends RerankError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super("overloaded", message);
    this.name = "OverloadedError";
  }
}

export const isRerankError = (e: unknown): e is RerankError => e instanceof RerankError;
