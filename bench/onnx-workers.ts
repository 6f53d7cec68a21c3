// Documents scored by one onnx engine on every thread, against engines of one thread each scoring
// their share at the same time, and against one engine of one thread (not part of `npm test`):
//   node --import tsx bench/onnx-workers.ts --model FILE.gguf [--tokens 256] [--docs 16] [--threads 2] [--rounds 2] [--oversubscribed]
// (--oversubscribed adds --threads engines of --threads threads each: more threads than cores.)
// Each engine runs in its own process (the way a pool of worker threads would use the cores: ONNX
// Runtime's Node binding runs a session on the thread that calls it). The documents are synthetic
// token ids after an 80-token head; z of every document is printed once per layout, so that the
// layouts can be compared bit for bit. Rounds alternate the layouts; the CPU flags are printed.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string", default: "256" },
    docs: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "2" },
    oversubscribed: { type: "boolean", default: false },
    child: { type: "string" },
  },
});
if (!values.model) throw new Error("--model FILE.gguf is required");
const model = values.model;
const [tokens, docs, threads, rounds] = [values.tokens, values.docs, values.threads, values.rounds].map(Number) as [number, number, number, number];
const head = Array.from({ length: 80 }, (_, i) => 1000 + i);
const document = (d: number) => Array.from({ length: tokens }, (_, i) => 2000 + ((i * 7919 + d * 31) % 50000));

if (values.child !== undefined) {
  // A child: open an engine of --threads threads, score documents child, child + n, ... when told to.
  const [index, count] = values.child.split("/").map(Number) as [number, number];
  const engine = await OnnxEngine.open({ model, precision: "int8", threads, logLevel: "error" });
  await engine.score([{ prefix: head, tails: [document(-1).slice(0, 16)] }]);
  process.stdout.write("ready\n");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  const z: Array<[number, number]> = [];
  for (let d = index; d < docs; d += count) z.push([d, (await engine.score([{ prefix: head, tails: [document(d)] }])).logits[0] ?? Number.NaN]);
  process.stdout.write(`${JSON.stringify({ z, rssGB: process.resourceUsage().maxRSS / 2 ** 20 })}\n`);
  await engine.dispose();
} else {
  const layout = async (engines: number, engineThreads: number) => {
    const children = Array.from({ length: engines }, (_, i) =>
      spawn(process.execPath, [...process.execArgv, import.meta.filename, "--model", model, "--tokens", String(tokens), "--docs", String(docs), "--threads", String(engineThreads), "--child", `${i}/${engines}`], { stdio: ["pipe", "pipe", "inherit"] }),
    );
    // Listened for from the start: a child may exit before its last line is read.
    const exited = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
    const lines = children.map((c) => {
      const queue: string[] = [];
      const waiting: Array<(line: string) => void> = [];
      let buffer = "";
      c.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
          const line = buffer.slice(0, i);
          buffer = buffer.slice(i + 1);
          const next = waiting.shift();
          if (next) next(line);
          else queue.push(line);
        }
      });
      return () => new Promise<string>((resolve) => (queue.length > 0 ? resolve(queue.shift() ?? "") : waiting.push(resolve)));
    });
    await Promise.all(lines.map((next) => next()));
    const started = performance.now();
    children.forEach((c) => c.stdin.end("go\n"));
    const results = (await Promise.all(lines.map((next) => next()))).map((l) => JSON.parse(l) as { z: Array<[number, number]>; rssGB: number });
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(exited);
    const z = results.flatMap((r) => r.z).sort((a, b) => a[0] - b[0]).map(([, v]) => v);
    return { seconds, z, rssGB: results.reduce((sum, r) => sum + r.rssGB, 0) };
  };
  const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8)$/.test(f));
  console.log(`${model}: ${docs} documents of ${tokens} tokens after an 80-token head, onnx int8; CPU flags: ${flags.join(" ")}`);
  const layouts: Array<[string, number, number]> = [
    [`1 engine x ${threads} threads`, 1, threads],
    [`${threads} engines x 1 thread`, threads, 1],
    ["1 engine x 1 thread", 1, 1],
    ...(values.oversubscribed ? ([[`${threads} engines x ${threads} threads`, threads, threads]] as Array<[string, number, number]>) : []),
  ];
  const zOf = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const [name, engines, engineThreads] of r % 2 ? [...layouts].reverse() : layouts) {
      const { seconds, z, rssGB } = await layout(engines, engineThreads);
      zOf.set(name, z);
      console.log(`round ${r + 1}  ${name.padEnd(22)} ${seconds.toFixed(1).padStart(6)} s  ${(docs / seconds).toFixed(2)} documents/s  peak RSS ${rssGB.toFixed(2)} GB (summed over processes)`);
    }
  }
  const [a, b] = layouts.map(([name]) => zOf.get(name) ?? []);
  const same = a?.every((z, i) => Object.is(z, b?.[i]));
  console.log(`z bit for bit the same in both layouts: ${same ? "yes" : "no"}`);
}
