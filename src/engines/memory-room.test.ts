import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { roomFrom } from "./memory-room.js";

const GIB = 1024 ** 3;
const limits = (data: string) => `Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax data size             ${data}           ${data}           bytes     \nMax stack size            8388608              unlimited            bytes     \n`;
const status = (vmDataKib: number) => `Name:\tnode\nVmPeak:\t 99999999 kB\nVmData:\t ${vmDataKib} kB\nVmStk:\t     132 kB\n`;
const meminfo = (availableKib: number, commit?: [number, number]) =>
  `MemTotal:       24000000 kB\nMemFree:        20000000 kB\nMemAvailable:   ${availableKib} kB\n` + (commit ? `CommitLimit:    ${commit[0]} kB\nCommitted_AS:   ${commit[1]} kB\n` : "");

test("memory room: the smallest of the limits Linux enforces, named", () => {
  const plenty = meminfo(20 * 1024 ** 2);
  assert.deepEqual(roomFrom({ limits: limits("unlimited"), status: status(2_000_000), meminfo: plenty }), { bytes: 20 * GIB, limitedBy: "the system's available memory" });
  // ulimit -d 2100000 (KiB) with 2,000,000 KiB of private writable memory mapped.
  assert.deepEqual(roomFrom({ limits: limits(String(2_100_000 * 1024)), status: status(2_000_000), meminfo: plenty }), { bytes: 100_000 * 1024, limitedBy: "the process's data limit (ulimit -d)" });
  // The commit limit counts only in strict overcommit mode.
  const strict = meminfo(20 * 1024 ** 2, [10_000_000, 9_500_000]);
  assert.equal(roomFrom({ meminfo: strict, overcommit: "0\n" })?.limitedBy, "the system's available memory");
  assert.deepEqual(roomFrom({ meminfo: strict, overcommit: "2\n" }), { bytes: 500_000 * 1024, limitedBy: "the system's commit limit (vm.overcommit_memory=2)" });
  // A container: reclaimable page cache (inactive files) is not used memory.
  const cgroup = { limit: `${4 * GIB}\n`, usage: `${3 * GIB}\n`, stat: `anon 100\nfile 200\ninactive_file ${GIB / 2}\nactive_file 5\n` };
  assert.deepEqual(roomFrom({ meminfo: plenty, cgroup }), { bytes: 1.5 * GIB, limitedBy: "the container's memory limit (cgroup)" });
  assert.equal(roomFrom({ meminfo: plenty, cgroup: { ...cgroup, stat: `total_inactive_file ${GIB}\n` } })?.bytes, 2 * GIB, "cgroup v1 names it total_inactive_file");
  for (const unlimited of ["max\n", "9223372036854771712\n"]) {
    assert.equal(roomFrom({ meminfo: plenty, cgroup: { ...cgroup, limit: unlimited } })?.limitedBy, "the system's available memory", `cgroup limit ${unlimited.trim()}`);
  }
  // Over the limit already: no room, never a negative one.
  assert.equal(roomFrom({ limits: limits("1000"), status: status(10), meminfo: plenty })?.bytes, 0);
  assert.equal(roomFrom({}), undefined, "nothing readable: the caller falls back to free memory");
});

test("memory room on this machine: a process under ulimit -d sees its data limit", { skip: process.platform !== "linux" }, () => {
  const module = fileURLToPath(new URL("./memory-room.ts", import.meta.url));
  const script = `import(${JSON.stringify(module)}).then((m) => console.log(JSON.stringify(m.memoryRoom())))`;
  const room = JSON.parse(execFileSync("bash", ["-c", `ulimit -d 3000000 && exec "$0" --import tsx -e "$1"`, process.execPath, script], { encoding: "utf8" })) as { bytes: number; limitedBy: string };
  assert.equal(room.limitedBy, "the process's data limit (ulimit -d)");
  // Node itself maps some hundreds of MiB of private writable memory at start.
  assert.ok(room.bytes > 1.5 * GIB && room.bytes < 3_000_000 * 1024, `room ${room.bytes}`);
});
