import cliProgress from "cli-progress";

/** A progress bar on stderr for long runs, only when stderr is a terminal (never in pipes or logs). */
export function progressBar(total: number, label: string, minTotal = 8): { update(done: number): void; stop(): void } {
  if (!process.stderr.isTTY || total < minTotal) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {value}/{total} pairs | {percentage}% | ETA {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}
