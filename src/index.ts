// qwen-rerank's library surface: what a user of the package needs, and nothing they should not
// hold (engines, pipelines, schedulers and stacks are the package's own business; docs/architecture.md
// says where they live). The CLI and the server are built on the same pieces.

// The reranker: load a model, rerank or score, read what it runs with.
export { createReranker, Reranker } from "./reranker.js";
export type { RerankerOptions, RerankCallOptions, RerankResult, RerankReport, Omitted, ScoredPair, ResolvedKnobs } from "./reranker.js";
export type { EngineInfo, EngineSelection, ScoreStats } from "./engines/engine.js";
export type { ModelFlavor, ModelShape } from "./model/facts.js";
export type { ChunkSpan, Overflow } from "./prompt/chunking.js";
export type { CacheStats } from "./scoring/logit-cache.js";

// Errors: one type with a code (its HTTP status and exit code are in docs/architecture.md, "Errors").
export { RerankError, ValidationError } from "./errors/errors.js";
export type { ErrorCode } from "./errors/errors.js";

// Knobs and presets: the knob table (bounds, defaults, HTTP names, flags) and the scenario presets.
export { KNOBS } from "./config/knobs.js";
export type { CallKnobs, DefaultKnobs, KnobName, KnobValues } from "./config/knobs.js";
export { BUILTIN_PRESETS, PresetRegistry } from "./prompt/presets.js";
export type { Preset } from "./prompt/presets.js";
export { DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH } from "./prompt/template.js";

// The HTTP server, for embedding it in a process of one's own.
export { startServer } from "./server/serve.js";
export type { StartServerOptions, RunningServer } from "./server/serve.js";
export type { ServerOptions } from "./server/app.js";

// Evaluation on one's own labelled data: read judgements and runs, measure, calibrate.
export { loadEvalSet } from "./eval/dataset.js";
export type { Candidate, EvalQuery, EvalSet, LoadOptions } from "./eval/dataset.js";
export { readQrels, readRun, writeRun } from "./eval/trec.js";
export type { Qrels, Run, RunEntry } from "./eval/trec.js";
export { DEFAULT_MEASURES, evaluateRun, parseMeasures } from "./eval/metrics.js";
export type { EvalOptions, Measure, MetricReport } from "./eval/metrics.js";
export { expectedCalibrationError, fitCalibration, logLoss } from "./eval/calibration.js";
export type { Calibration, CalibrationFit } from "./eval/calibration.js";
export { pairedTest } from "./eval/significance.js";
export type { PairedTest } from "./eval/significance.js";
