import type { Command } from "commander";
import { RerankError, ValidationError } from "../errors/errors.js";
import type { Adjustment } from "../monitor/adjustments.js";
import type { MonitorSnapshot } from "../monitor/monitor.js";
import { intArg } from "./flags.js";

interface StatsFlags {
  apiKey?: string;
  json?: boolean;
  interval: number;
}

type Stats = MonitorSnapshot & { adjustments: Adjustment[]; queue?: { pairs: number; requests: number } | null };

/** Reads GET /stats of a running server; every failure is a RerankError saying what to do. */
async function fetchStats(base: string, apiKey: string | undefined): Promise<Stats> {
  let url: URL;
  try {
    url = new URL("/stats", base);
  } catch {
    throw new ValidationError(`"${base}" is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  let res: Response;
  try {
    res = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(5000) });
  } catch (error) {
    // fetch says "fetch failed"; the reason is its cause (ECONNREFUSED, ENOTFOUND, a timeout).
    const reason = (error as { cause?: { code?: string; message?: string } }).cause;
    const cause = reason?.code ?? (reason?.message === "bad port" ? "bad port" : (error as Error).name);
    const why: Record<string, string> = { ECONNREFUSED: "nothing listens there (is `qwen-rerank serve` running, on that port?)", ENOTFOUND: "no such host", TimeoutError: "no answer within 5 s", ECONNRESET: "the connection was reset", "bad port": `Node's fetch refuses port ${url.port} (a port browsers block): serve on another one` };
    throw new RerankError("engine_unavailable", `cannot reach ${url.href}: ${why[cause] ?? (error as Error).message}${why[cause] ? ` (${cause})` : ""}`);
  }
  if (res.status === 401) throw new ValidationError(apiKey ? `${url.href} refused the API key given with --api-key: check it against the server's --api-key` : `${url.href} wants an API key: give --api-key KEY`);
  if (!res.ok) throw new RerankError("engine_unavailable", `${url.href} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Stats;
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const BARS = "▁▂▃▄▅▆▇█";

/** A score histogram as one line of bars, lowest bin first. */
function sparkline(counts: readonly number[]): string {
  const max = Math.max(1, ...counts);
  return counts.map((c) => (c === 0 ? " " : (BARS[Math.min(BARS.length - 1, Math.floor((c / max) * (BARS.length - 1)))] ?? " "))).join("");
}

/** The terminal view of a snapshot. */
export function renderStats(base: string, s: Stats): string {
  const languages = Object.entries(s.languages)
    .map(([code, n]) => `${code} ${n}`)
    .join(", ");
  const current = Object.entries(s.current)
    .map(([k, v]) => `${k} ${v ?? "-"}`)
    .join("   ");
  const lines = [
    `qwen-rerank stats ${base}   window: ${s.window.requests} requests (at most ${s.window.max_requests} within ${s.window.max_seconds} s)`,
    `requests     ${s.total_requests} total, ${s.total_errors} failed; in the window ${pct(s.error_rate)} failed`,
    `latency      avg ${ms(s.avg_latency_ms)}   p50 ${ms(s.latency_ms.p50)}   p95 ${ms(s.latency_ms.p95)}   p99 ${ms(s.latency_ms.p99)}   queue ${ms(s.avg_queue_ms)}`,
    `queue        ${s.queue ? `${s.queue.pairs} pairs waiting, ${s.queue.requests} requests in the scheduler` : "-"}`,
    `throughput   ${s.pairs_per_s.toFixed(2)} pairs/s   ${s.tokens_per_s.toFixed(0)} tokens/s   ${ms(s.latency_per_pair_ms)} per pair   batch ${s.batch_pairs.mean.toFixed(1)} pairs (max ${s.batch_pairs.max})`,
    `scores       mean ${s.score_mean.toFixed(3)}   std ${s.score_std.toFixed(3)}   spread in a request ${s.score_spread_mean.toFixed(3)}   log-odds mean ${s.logit_mean.toFixed(2)} std ${s.logit_std.toFixed(2)}`,
    `histogram    0 |${sparkline(s.score_histogram)}| 1`,
    `rates        truncated ${pct(s.truncation_rate)}   chunked ${pct(s.chunking_rate)}   cache hits ${pct(s.cache_hit_ratio)}`,
    `languages    ${languages || "-"}`,
    `current      ${current || "-"}`,
  ];
  const recent = s.adjustments.slice(-5);
  if (recent.length > 0) {
    lines.push("adjustments");
    for (const a of recent) lines.push(`  ${a.time}  ${a.knob} ${a.from} -> ${a.to}: ${a.reason} (${a.figure.name} ${a.figure.value.toFixed(3)})`);
  }
  return `${lines.join("\n")}\n`;
}

export function registerStats(program: Command): void {
  program
    .command("stats")
    .description("show a running server's monitor (GET /stats): a table refreshed on a terminal, or JSON once")
    .argument("<url>", "the server, e.g. http://127.0.0.1:8080")
    .option("--api-key <key>", "the server's API key")
    .option("--json", "print the snapshot as JSON once")
    .option("--interval <s>", "seconds between refreshes on a terminal", intArg(1, 3600), 2)
    .action(async (base: string, flags: StatsFlags) => {
      const first = await fetchStats(base, flags.apiKey);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(first, null, 2)}\n`);
        return;
      }
      // Piped or redirected: one table. On a terminal: redraw until Ctrl-C.
      if (!process.stdout.isTTY) {
        process.stdout.write(renderStats(base, first));
        return;
      }
      let stats = first;
      for (;;) {
        process.stdout.write(`\x1b[2J\x1b[H${renderStats(base, stats)}(every ${flags.interval} s; Ctrl-C to stop)\n`);
        await new Promise((r) => setTimeout(r, flags.interval * 1000));
        stats = await fetchStats(base, flags.apiKey);
      }
    });
}
