import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";
import * as ort from "onnxruntime-node";
import { ThreadSession } from "./session-thread.js";

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const info = (name: string, elemType: number): proto.IValueInfoProto => ({ name, type: { tensorType: { elemType, shape: { dim: [{ dimParam: "n" }] } } } });

/** y = a · 3 + float(b): a float input the run copies, an int8 one it can borrow (as the engine's cache). */
const model = onnx.ModelProto.encode({
  irVersion: 8,
  opsetImport: [{ domain: "", version: 17 }],
  graph: {
    name: "probe",
    node: [
      { opType: "Mul", input: ["a", "three"], output: ["a3"], name: "mul" },
      { opType: "Cast", input: ["b"], output: ["bf"], name: "cast", attribute: [{ name: "to", i: T.FLOAT, type: onnx.AttributeProto.AttributeType.INT }] },
      { opType: "Add", input: ["a3", "bf"], output: ["y"], name: "add" },
    ],
    initializer: [{ name: "three", dataType: T.FLOAT, dims: [], floatData: [3] }],
    input: [info("a", T.FLOAT), info("b", T.INT8)],
    output: [info("y", T.FLOAT)],
  },
}).finish();

describe("ThreadSession: an ONNX Runtime session on a worker thread", () => {
  test("a run's outputs are bit for bit those of the same session on this thread, and a lent buffer comes back whole", async () => {
    const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
    const cache = Int8Array.from({ length: 1000 }, (_, i) => (i % 255) - 127);
    const here = await ort.InferenceSession.create(model);
    const expected = (await here.run({ a: new ort.Tensor("float32", a, [1000]), b: new ort.Tensor("int8", cache, [1000]) }, ["y"])).y?.data;
    await here.release();

    const session = await ThreadSession.create(ort, model.slice(), {});
    try {
      let buffer = cache.buffer;
      const loan = {
        get buffers() {
          return [buffer];
        },
        restore(back: ArrayBuffer[]) {
          buffer = back[0] ?? new ArrayBuffer(0);
        },
      };
      const out = await session.run({ a: new ort.Tensor("float32", a, [1000]), b: new ort.Tensor("int8", new Int8Array(buffer, 0, 1000), [1000]) }, ["y"], loan);
      assert.deepEqual(out.y?.data, expected, "bit-equality is the point: the same kernels on another thread");
      assert.equal(cache.byteLength, 0, "lent: detached here during the run");
      assert.deepEqual(new Int8Array(buffer), Int8Array.from({ length: 1000 }, (_, i) => (i % 255) - 127), "given back whole");
      // A second run over the returned buffer works the same.
      const again = await session.run({ a: new ort.Tensor("float32", a, [1000]), b: new ort.Tensor("int8", new Int8Array(buffer), [1000]) }, ["y"], loan);
      assert.deepEqual(again.y?.data, expected);
    } finally {
      await session.release();
    }
  });

  test("this thread's event loop keeps turning while a run is in flight (a session on this thread holds it for the whole run)", async () => {
    // One product of 768 x 768 matrices, repeated by a chain of 8: tens of milliseconds of kernels.
    const n = 768;
    const square: proto.IValueInfoProto = { name: "x", type: { tensorType: { elemType: T.FLOAT, shape: { dim: [{ dimValue: n }, { dimValue: n }] } } } };
    const chain = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "chain",
        node: Array.from({ length: 8 }, (_, i) => ({ opType: "MatMul", input: [i === 0 ? "x" : `m${i - 1}`, "x"], output: [i === 7 ? "y" : `m${i}`], name: `mm${i}` })),
        input: [square],
        output: [{ ...square, name: "y" }],
      },
    }).finish();
    const session = await ThreadSession.create(ort, chain.slice(), { intraOpNumThreads: 1 });
    try {
      let turns = 0;
      let done = false;
      const spin = () => {
        if (done) return;
        turns++;
        setImmediate(spin);
      };
      const run = session.run({ x: new ort.Tensor("float32", new Float32Array(n * n).fill(1 / n), [n, n]) }, ["y"]);
      setImmediate(spin);
      const out = await run;
      done = true;
      assert.ok(turns > 0, "the event loop turned during the run");
      // x·x = x for x = 1/n everywhere: every product in the chain gives back 1/n.
      assert.ok(Math.abs(((out.y?.data as Float32Array)[0] ?? 0) - 1 / n) < 1e-6);
    } finally {
      await session.release();
    }
  });

  test("ONNX Runtime's error comes back as a rejection, with the lent buffer", async () => {
    const session = await ThreadSession.create(ort, model.slice(), {});
    try {
      let buffer = new Int8Array(4).buffer;
      const loan = {
        get buffers() {
          return [buffer];
        },
        restore(back: ArrayBuffer[]) {
          buffer = back[0] ?? new ArrayBuffer(0);
        },
      };
      // Inputs of different lengths: Add cannot broadcast 3 against 4.
      await assert.rejects(session.run({ a: new ort.Tensor("float32", new Float32Array(3), [3]), b: new ort.Tensor("int8", new Int8Array(buffer), [4]) }, ["y"], loan), /./);
      assert.equal(buffer.byteLength, 4);
    } finally {
      await session.release();
    }
  });

  test("a graph ONNX Runtime refuses fails the create, and a session left open does not keep the process alive", async () => {
    await assert.rejects(ThreadSession.create(ort, new Uint8Array([1, 2, 3]), {}));
    // A child that opens a session, runs it once and never releases it: it must still exit by itself.
    const self = fileURLToPath(import.meta.url).replace(/\.test\.ts$/, ".ts");
    const script = `
      const ort = await import("onnxruntime-node");
      const { ThreadSession } = await import(${JSON.stringify(self)});
      const session = await ThreadSession.create(ort, new Uint8Array(${JSON.stringify(Array.from(model))}), {});
      const out = await session.run({ a: new ort.Tensor("float32", new Float32Array([1]), [1]), b: new ort.Tensor("int8", new Int8Array([2]), [1]) }, ["y"]);
      console.log(out.y.data[0]);`;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), "5");
  });
});
