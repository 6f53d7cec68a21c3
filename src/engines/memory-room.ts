import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";

/** How much more this process may allocate, and which limit says so. */
export interface MemoryRoom {
  bytes: number;
  /** e.g. "the process's data limit (ulimit -d)". */
  limitedBy: string;
}

/** The texts `memoryRoom` reads; a missing one is undefined (another OS, no cgroup, no permission). */
export interface MemoryTexts {
  /** /proc/self/limits */
  limits?: string | undefined;
  /** /proc/self/status */
  status?: string | undefined;
  /** /proc/meminfo */
  meminfo?: string | undefined;
  /** /proc/sys/vm/overcommit_memory */
  overcommit?: string | undefined;
  /** The process's memory cgroup: its limit (memory.max, or v1's memory.limit_in_bytes), usage and memory.stat. */
  cgroup?: { limit: string; usage: string; stat: string } | undefined;
}

const KIB = 1024;

function kibField(text: string | undefined, name: string): number | undefined {
  const m = text ? new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text) : null;
  return m?.[1] === undefined ? undefined : Number(m[1]) * KIB;
}

function statField(stat: string, names: string[]): number {
  for (const name of names) {
    const m = new RegExp(`^${name} (\\d+)$`, "m").exec(stat);
    if (m?.[1] !== undefined) return Number(m[1]);
  }
  return 0;
}

/**
 * The smallest room among the limits Linux enforces on this process: a failed allocation under
 * `ulimit -d` or `vm.overcommit_memory=2` (malloc returns NULL, and a small one failing inside
 * llama.cpp aborts the process), a container's cgroup limit (the OOM killer), the system's
 * available memory. Reclaimable page cache (inactive files) does not count as used.
 */
export function roomFrom(texts: MemoryTexts): MemoryRoom | undefined {
  const rooms: MemoryRoom[] = [];
  // "Max data size  <soft> <hard> bytes": RLIMIT_DATA counts private writable mappings, which is what VmData sums.
  const dataLimit = texts.limits ? /^Max data size\s+(\d+|unlimited)\s/m.exec(texts.limits)?.[1] : undefined;
  const vmData = kibField(texts.status, "VmData");
  if (dataLimit !== undefined && dataLimit !== "unlimited" && vmData !== undefined) {
    rooms.push({ bytes: Number(dataLimit) - vmData, limitedBy: "the process's data limit (ulimit -d)" });
  }
  if (texts.overcommit?.trim() === "2") {
    const commitLimit = kibField(texts.meminfo, "CommitLimit");
    const committed = kibField(texts.meminfo, "Committed_AS");
    if (commitLimit !== undefined && committed !== undefined) rooms.push({ bytes: commitLimit - committed, limitedBy: "the system's commit limit (vm.overcommit_memory=2)" });
  }
  if (texts.cgroup) {
    const limit = Number(texts.cgroup.limit.trim());
    // "max" (v2) or v1's page-rounded 2^63: no limit.
    if (Number.isFinite(limit) && limit < 2 ** 60) {
      const used = Number(texts.cgroup.usage.trim()) - statField(texts.cgroup.stat, ["inactive_file", "total_inactive_file"]);
      rooms.push({ bytes: limit - used, limitedBy: "the container's memory limit (cgroup)" });
    }
  }
  const available = kibField(texts.meminfo, "MemAvailable");
  if (available !== undefined) rooms.push({ bytes: available, limitedBy: "the system's available memory" });
  let least: MemoryRoom | undefined;
  for (const r of rooms) if (!least || r.bytes < least.bytes) least = r;
  return least ? { ...least, bytes: Math.max(0, least.bytes) } : undefined;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

function cgroupTexts(): MemoryTexts["cgroup"] {
  const own = read("/proc/self/cgroup");
  if (!own) return undefined;
  const v2 = /^0::(.*)$/m.exec(own)?.[1];
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(own)?.[1];
  const candidates: Array<[string, string, string, string]> = [];
  if (v1 !== undefined) {
    for (const dir of [`/sys/fs/cgroup/memory${v1}`, "/sys/fs/cgroup/memory"]) candidates.push([dir, "memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat"]);
  }
  if (v2 !== undefined) {
    for (const dir of [`/sys/fs/cgroup${v2}`, "/sys/fs/cgroup"]) candidates.push([dir, "memory.max", "memory.current", "memory.stat"]);
  }
  for (const [dir, limitFile, usageFile, statFile] of candidates) {
    const limit = read(`${dir}/${limitFile}`);
    const usage = read(`${dir}/${usageFile}`);
    if (limit !== undefined && usage !== undefined) return { limit, usage, stat: read(`${dir}/${statFile}`) ?? "" };
  }
  return undefined;
}

/**
 * How much more this process can allocate now. On Linux, from /proc and its cgroup; elsewhere
 * the system's free memory.
 */
export function memoryRoom(): MemoryRoom {
  if (process.platform === "linux") {
    const room = roomFrom({
      limits: read("/proc/self/limits"),
      status: read("/proc/self/status"),
      meminfo: read("/proc/meminfo"),
      overcommit: read("/proc/sys/vm/overcommit_memory"),
      cgroup: cgroupTexts(),
    });
    if (room) return room;
  }
  return { bytes: Math.min(freemem(), totalmem()), limitedBy: "the system's free memory" };
}
