import cliProgress from "cli-progress";

/** A progress bar in bytes on stderr for a conversion, only when stderr is a terminal (never in pipes or logs). */
export function bytesProgress(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const gb = (n: number) => (n / 1e9).toFixed(2);
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {done}/{all} GB | {percentage}% | ETA {eta_formatted}`, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update: (done, total) => {
      if (!started) {
        bar.start(total, 0, { done: gb(0), all: gb(total) });
        started = true;
      }
      bar.update(done, { done: gb(done), all: gb(total) });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
