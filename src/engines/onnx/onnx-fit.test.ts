import assert from "node:assert/strict";
import { test } from "node:test";
import { onnxMemoryEstimate, packsWeights, PACKED_WEIGHTS_UP_TO_BYTES } from "./onnx-fit.js";

/** The 8B shape's matrices in every layer (what onnxMemoryEstimate reads): hidden 4,096, 32 query and 8 key/value heads of 128, FFN 12,288. */
const eightB = {
  shapeOf: (name: string) => {
    const [rows, cols] = name.includes("ffn_down") ? [4096, 12288] : name.includes("ffn_") ? [12288, 4096] : name.includes("attn_k") || name.includes("attn_v") ? [1024, 4096] : [4096, 4096];
    return { rows, cols };
  },
};

test("packed weights: asked for wins; by default packed up to 2 GiB of matrices (0.6B), memory-mapped only above (4B, 8B)", () => {
  assert.equal(packsWeights(0.44e9, undefined), true);
  assert.equal(packsWeights(PACKED_WEIGHTS_UP_TO_BYTES, undefined), true);
  assert.equal(packsWeights(7e9, undefined), false);
  assert.equal(packsWeights(7e9, true), true);
  assert.equal(packsWeights(0.44e9, false), false);
});

test("the int8 estimate holds the weights twice only when ONNX Runtime packs them", () => {
  // The 8B shape's int8 matrices (36 layers): ~7 GB, so memory-mapped only by default.
  const mapped = onnxMemoryEstimate(eightB, 36, "int8");
  const packed = onnxMemoryEstimate(eightB, 36, "int8", undefined, true);
  assert.ok(mapped > 6.5e9 && mapped < 11e9, `${mapped}`);
  assert.ok(Math.abs(packed - mapped - (mapped - 3e9)) < 1e6, `${packed} vs ${mapped}`);
  assert.equal(onnxMemoryEstimate(eightB, 36, "int8", undefined, false), mapped);
});
