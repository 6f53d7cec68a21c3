import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { noGpuDevice } from "./gpu-devices.js";

test("no GPU device: only on Linux, only when /dev shows none of NVIDIA's, ROCm's, a DRM render node or WSL's", () => {
  const root = mkdtempSync(join(tmpdir(), "qr-dev-"));
  try {
    const dev = (...files: string[]) => {
      const dir = mkdtempSync(join(root, "dev-"));
      for (const f of files) {
        mkdirSync(join(dir, f, ".."), { recursive: true });
        writeFileSync(join(dir, f), "");
      }
      return dir;
    };
    assert.equal(noGpuDevice(dev("null", "zero", "dri/card0")), true, "a display-only card has no render node");
    assert.equal(noGpuDevice(dev("null", "nvidia0", "nvidiactl")), false);
    assert.equal(noGpuDevice(dev("null", "kfd")), false);
    assert.equal(noGpuDevice(dev("null", "dxg")), false);
    assert.equal(noGpuDevice(dev("null", "dri/renderD128")), false);
    assert.equal(noGpuDevice(join(root, "missing")), false, "an unreadable /dev cannot tell");
    assert.equal(noGpuDevice(dev("null"), "darwin"), false, "macOS: Metal, ask llama.cpp");
    assert.equal(noGpuDevice(dev("null"), "win32"), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
