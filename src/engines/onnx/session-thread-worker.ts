// The thread of one ThreadSession (session-thread.ts): creates its ONNX Runtime session, runs it
// when asked, one request at a time, and answers each in order.
import { parentPort } from "node:worker_threads";
import type { InferenceSession } from "onnxruntime-node";
import * as ort from "onnxruntime-node";
import type { SessionReply, SessionRequest, WireTensor } from "./session-thread.js";

let session: InferenceSession | undefined;
const port = parentPort;
if (!port) throw new Error("session-thread-worker runs as a worker thread of ThreadSession");

/**
 * Answers the engine's thread, moving back what it lent; the outputs' buffers are this thread's own
 * and fresh every run, so they are moved too, not copied.
 */
function reply(message: SessionReply, lent: ArrayBuffer[] = [], outputs: WireTensor[] = []): void {
  const moved = outputs.map((t) => (t.data as { buffer: ArrayBufferLike }).buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && !lent.includes(b));
  try {
    port?.postMessage(message, [...lent, ...moved]);
  } catch {
    // An output buffer that cannot be moved (one ONNX Runtime still owns) is copied instead.
    port?.postMessage(message, lent);
  }
}

async function handle(request: SessionRequest): Promise<void> {
  const lent = request.type === "run" ? request.lent : [];
  try {
    if (request.type === "create") {
      session = typeof request.source === "string" ? await ort.InferenceSession.create(request.source, request.options) : await ort.InferenceSession.create(request.source, request.options);
      return reply({ type: "created" });
    }
    if (request.type === "release") {
      await session?.release();
      session = undefined;
      return reply({ type: "released" });
    }
    if (!session) return reply({ type: "failed", message: "internal: a run before the session was created", lent }, lent);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(request.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    const result = await session.run(feeds, request.fetches);
    const outputs: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(result)) outputs[name] = { type: t.type, data: t.data, dims: t.dims };
    reply({ type: "ran", outputs, lent }, lent, Object.values(outputs));
  } catch (error) {
    reply({ type: "failed", message: error instanceof Error ? error.message : String(error), lent }, lent);
  }
}

// One at a time, in order: a request waits for the one before it.
let queue: Promise<void> = Promise.resolve();
port.on("message", (request: SessionRequest) => {
  queue = queue.then(() => handle(request));
});
