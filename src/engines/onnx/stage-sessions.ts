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
    try {
      for (const { stage, model: source } of found.models) {
        try {
          // A file path lets ONNX Runtime memory-map the weights (no copy in memory).
          const session = await ThreadSession.create(ort, source, sessionOptions);
          stages.push({ stage, session });
        } catch (error) {
          if (found.source !== "cache") throw new RerankError("engine_unavailable", `ONNX Runtime refused the graph built from ${model} (layers ${stage.first}-${stage.end - 1}): ${(error as Error).message}`, { cause: error });
          damage = error as Error;
          break;
        }
      }
      damage ??= await verified;
    } catch (error) {
      await Promise.all(stages.map((s) => s.session.release()));
      throw error;
    }
    if (!damage) return { stages, source: found.source };
    await Promise.all(stages.map((s) => s.session.release()));
    if (attempt > 0 || !request.dir) throw new RerankError("engine_failure", `the onnx graphs of ${model} could not be loaded: ${damage.message}`, { cause: damage });
    request.warn(`the onnx graph cache in ${request.dir} is damaged (${damage.message}); rebuilding it`);
    discardCache(request.dir);
  }
}
