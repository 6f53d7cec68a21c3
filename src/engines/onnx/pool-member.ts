// One engine of an OnnxEnginePool (engine-pool.ts), in its own process: opens an OnnxEngine when
// asked, scores what it is sent, and exits when the pool disconnects (or its process ends).
import { RerankError } from "../../errors/errors.js";
import type { PoolReply, PoolRequest } from "./engine-pool.js";
import { OnnxEngine } from "./onnx-engine.js";

let engine: OnnxEngine | undefined;
const reply = (message: PoolReply) => process.send?.(message);
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
const failed = (error: unknown, id?: number): PoolReply => ({ type: "failed", ...(id !== undefined ? { id } : {}), code: error instanceof RerankError ? error.code : "engine_failure", message: error instanceof Error ? error.message : String(error) });

process.on("message", (request: PoolRequest) => {
  if (request.type === "open") {
    OnnxEngine.open(request.options).then(
      (opened) => {
        engine = opened;
        reply({ type: "opened", info: opened.info, peakRssBytes: peakRssBytes() });
      },
      (error: unknown) => reply(failed(error)),
    );
    return;
  }
  if (!engine) return reply(failed(new RerankError("engine_failure", "scored before the engine opened"), request.id));
  const open = engine;
  open.score(request.groups).then(
    (result) => reply({ type: "scored", id: request.id, logits: result.logits, stats: result.stats, prefixCache: open.info.prefixCache, peakRssBytes: peakRssBytes() }),
    (error: unknown) => reply(failed(error, request.id)),
  );
});

process.on("disconnect", () => {
  void (engine?.dispose() ?? Promise.resolve()).finally(() => process.exit(0));
});
