import { readFileSync } from "node:fs";
import { arch, cpus } from "node:os";

/** The CPU's name and feature flags as /proc/cpuinfo names them (Linux); elsewhere the name and no flags. */
export interface CpuFeatures {
  model: string;
  flags: ReadonlySet<string>;
}

let cached: CpuFeatures | undefined;

export function cpuFeatures(): CpuFeatures {
  if (cached) return cached;
  const model = cpus()[0]?.model.trim() ?? "";
  try {
    const flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
    cached = { model, flags: new Set(flags.split(/\s+/).filter(Boolean)) };
  } catch {
    cached = { model, flags: new Set() };
  }
  return cached;
}

/** The flags that decide the engines' matrix kernels (what benchmark lines print, and what engine choices key on). */
const KERNEL_FLAGS = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"] as const;

/** e.g. "x64 avx2 fma f16c avx512f avx512bw avx512_vnni": the architecture and the kernel flags this CPU has. */
export function kernelFlagsLine(features: CpuFeatures = cpuFeatures()): string {
  return [arch(), ...KERNEL_FLAGS.filter((f) => features.flags.has(f))].join(" ");
}

/**
 * Whether the CPU multiplies unsigned by signed bytes into 32-bit sums without an intermediate
 * saturation (x86 VNNI's vpdpbusd). ONNX Runtime's fast int8 kernels on x86 are u8×s8: with VNNI
 * they are exact and ~20x faster than its s8×s8 path; without it (AVX2 vpmaddubsw adds two
 * products in int16) they saturate. The onnx engine's int8 mode picks its activations' sign by it.
 */
export function hasUnsignedDotProduct(features: CpuFeatures = cpuFeatures()): boolean {
  return arch() === "x64" && (features.flags.has("avx512_vnni") || features.flags.has("avx_vnni") || features.flags.has("amx_int8"));
}

/**
 * Whether the onnx engine's int8 QK^T beats fp32 here (OnnxEngineOptions.int8Attention). Measured
 * on two CPUs (docs/benchmarks.md): on a Zen 4 with AVX-512 VNNI and no AMX, the last run of a
 * 4,096-token document took 22% less kernel time with it (5.7-5.8 s against 7.3-7.5 s on one
 * thread, 0.6B shape, at 4,012, 4,096 and 4,175 keys) and 256-token runs the same; on an AMX Xeon
 * ONNX Runtime's int8 GEMM over a non-constant B was 1.5-2.3x slower at most key counts, and whole
 * documents 5% longer. Other CPUs (AVX-VNNI, AVX2, Arm) are unmeasured: fp32, as before.
 */
export function int8AttentionPays(features: CpuFeatures = cpuFeatures()): boolean {
  return arch() === "x64" && features.flags.has("avx512_vnni") && !features.flags.has("amx_int8");
}
