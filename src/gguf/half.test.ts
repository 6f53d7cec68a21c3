import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBfloat16, fromHalf, toBfloat16, toHalf } from "./half.js";

test("binary16 encodes exact values and rounds to nearest even", () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(0), 0);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(1e6), 0x7c00);
  assert.equal(toHalf(2 ** -24), 0x0001);
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00);
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.ok(Number.isNaN(fromHalf(toHalf(Number.NaN))));
});

test("binary16 round trip stays within half an ulp", () => {
  for (let i = 0; i < 2000; i++) {
    const x = (Math.sin(i * 12.9898) * 43758.5453) % 8;
    const y = fromHalf(toHalf(x));
    assert.ok(Math.abs(x - y) <= Math.abs(x) * 2 ** -11 + 2 ** -25, `${x} -> ${y}`);
  }
});

test("bfloat16 keeps float32's top half and rounds the rest to nearest even", () => {
  assert.equal(toBfloat16(1), 0x3f80);
  assert.equal(toBfloat16(-2), 0xc000);
  assert.equal(fromBfloat16(0x3f80), 1);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa; just above rounds up
  assert.equal(toBfloat16(1 + 2 ** -8), 0x3f80);
  assert.equal(toBfloat16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(toBfloat16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(toBfloat16(3.4e38), 0x7f80); // overflow to infinity, as PyTorch does
  assert.ok(Number.isNaN(fromBfloat16(toBfloat16(Number.NaN))));
  for (let i = 0; i < 2000; i++) {
    const x = (Math.sin(i * 12.9898) * 43758.5453) % 8;
    assert.ok(Math.abs(x - fromBfloat16(toBfloat16(x))) <= Math.abs(x) * 2 ** -8, String(x));
  }
});
