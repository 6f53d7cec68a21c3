import type * as OrtModule from "onnxruntime-node";
import { RerankError } from "../../errors/errors.js";
import type { GraphStage } from "./graph.js";
import type { GraphSource, StageModelsRequest } from "./graph-cache.js";
import { discardCache, stageModels } from "./graph-cache.js";
import { ThreadSession } from "./session-thread.js";

type Ort = typeof OrtModule;

/**
 * One ONNX Runtime session per stage, each on its own thread (session-thread.ts), from the graph cache (or built now, src/engines/onnx/graph-cache.ts).
 * A cache whose files fail their sha256 (checked while the sessions load) or that ONNX Runtime
 * cannot load is discarded and built again, once.
 */
export async function loadStages(ort: Ort, request: StageModelsRequest, sessionOptions: OrtModule.InferenceSession.SessionOptions, model: string): Promise<{ stages: Array<{ stage: GraphStage; session: ThreadSession }>; source: GraphSource }> {
  for (let attempt = 0; ; attempt++) {
    const found = await stageModels(request);
    const stages: Array<{ stage: GraphStage; session: ThreadSession }> = [];
    // A failed check must not leave an unhandled rejection while the sessions still load.
    const verified = found.verified.then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    let damage: Error | undefined;
    // Each on its own thread, so the stages' sessions (graphs built in memory: several) are created side by side.
    // A file path lets ONNX Runtime memory-map the weights (no copy in memory).
    const created = await Promise.allSettled(found.models.map(({ model: source }) => ThreadSession.create(ort, source, sessionOptions)));
    created.forEach((c, i) => {
      const stage = found.models[i]?.stage;
      if (c.status === "fulfilled" && stage) stages.push({ stage, session: c.value });
    });
    const refused = created.findIndex((c) => c.status === "rejected");
    const failure = created[refused];
    if (failure?.status === "rejected") {
      const stage = found.models[refused]?.stage;
      if (found.source !== "cache") {
        await Promise.all(stages.map((s) => s.session.release()));
        throw new RerankError("engine_unavailable", `ONNX Runtime refused the graph built from ${model} (layers ${stage?.first}-${(stage?.end ?? 0) - 1}): ${(failure.reason as Error).message}`, { cause: failure.reason });
      }
      damage = failure.reason as Error;
    }
    damage ??= await verified;
    if (!damage) return { stages, source: found.source };
    await Promise.all(stages.map((s) => s.session.release()));
    if (attempt > 0 || !request.dir) throw new RerankError("engine_failure", `the onnx graphs of ${model} could not be loaded: ${damage.message}`, { cause: damage });
    request.warn(`the onnx graph cache in ${request.dir} is damaged (${damage.message}); rebuilding it`);
    discardCache(request.dir);
  }
}
