import { readdirSync } from "node:fs";

/**
 * Whether this machine shows no device that a llama.cpp GPU build could use, known from the device
 * files without loading llama.cpp (whose "auto" runtime takes ~0.9 s of a start to find none). Only
 * on Linux, where every GPU runtime goes through one: NVIDIA's (`/dev/nvidia*`), AMD ROCm's
 * (`/dev/kfd`), a DRM render node (`/dev/dri/renderD*`, what Vulkan opens on any vendor's GPU) or
 * WSL's GPU (`/dev/dxg`). A software Vulkan device (llvmpipe) has none of them, and llama.cpp's
 * Vulkan backend leaves CPU devices out too. Elsewhere (macOS has Metal on every Apple GPU, Windows
 * its own driver model) it cannot tell: false, and the caller waits for llama.cpp to say.
 */
export function noGpuDevice(devices = "/dev", platform: NodeJS.Platform = process.platform): boolean {
  if (platform !== "linux") return false;
  const names = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  const top = names(devices);
  if (top.length === 0) return false; // No /dev to read (a sandbox that hides it): cannot tell.
  if (top.some((n) => n.startsWith("nvidia") || n === "kfd" || n === "dxg")) return false;
  return !names(`${devices}/dri`).some((n) => n.startsWith("renderD"));
}
