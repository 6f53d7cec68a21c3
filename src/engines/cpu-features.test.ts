import assert from "node:assert/strict";
import { arch } from "node:os";
import { test } from "node:test";
import { hasUnsignedDotProduct, int8AttentionPays, kernelFlagsLine } from "./cpu-features.js";

test("unsigned int8 activations only where x86 VNNI makes u8×s8 exact", { skip: arch() !== "x64" ? "x86 flags" : false }, () => {
  const cpu = (flags: string[]) => ({ model: "test", flags: new Set(flags) });
  assert.equal(hasUnsignedDotProduct(cpu(["avx2", "fma"])), false, "AVX2 alone saturates");
  assert.equal(hasUnsignedDotProduct(cpu(["avx2", "avx512f", "avx512bw"])), false, "AVX-512 without VNNI still uses vpmaddubsw");
  assert.equal(hasUnsignedDotProduct(cpu(["avx2", "avx512f", "avx512_vnni"])), true);
  assert.equal(hasUnsignedDotProduct(cpu(["avx2", "avx_vnni"])), true);
  assert.equal(kernelFlagsLine(cpu(["sse2", "avx2", "avx512_vnni", "fma"])), "x64 avx2 fma avx512_vnni");
});

test("int8 QK^T by default only where it was measured faster: AVX-512 VNNI without AMX", { skip: arch() !== "x64" ? "x86 flags" : false }, () => {
  const cpu = (flags: string[]) => ({ model: "test", flags: new Set(flags) });
  assert.equal(int8AttentionPays(cpu(["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"])), true, "Zen 4: measured 22% faster");
  assert.equal(int8AttentionPays(cpu(["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16"])), false, "AMX Xeon: measured slower");
  assert.equal(int8AttentionPays(cpu(["avx2", "fma", "avx_vnni"])), false, "AVX-VNNI alone: not measured");
  assert.equal(int8AttentionPays(cpu(["avx2", "fma"])), false, "AVX2: not measured");
});
