import cliProgress from "cli-progress";

/** A progress bar on stderr for long runs, only when stderr is a terminal (never in pipes or logs). */
export function progressBar(total: number, label: string, minTotal = 8): { update(done: number): void; stop(): void } {
  if (!process.stderr.isTTY || total < minTotal) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} pairs | {rate} pairs/s | {percentage}% | ETA {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  // The rate of this run: with --queue, the whole cluster's.
  const started = performance.now();
  bar.start(total, 0, { rate: "-" });
  return { update: (done) => bar.update(done, { rate: (done / Math.max(1e-3, (performance.now() - started) / 1000)).toFixed(2) }), stop: () => bar.stop() };
}
