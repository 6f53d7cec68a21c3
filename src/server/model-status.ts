// What the pool reports of each model: below the pool and the metrics that read it.

export type ModelState = "unloaded" | "loading" | "loaded" | "unloading" | "failed";

/** One row of GET /v1/models. */
export interface ModelStatus {
  name: string;
  state: ModelState;
  /** Measured once loaded, else the estimate. */
  bytes: number | undefined;
  lastUsed: number | undefined;
  activeRequests: number;
  error: string | undefined;
}
