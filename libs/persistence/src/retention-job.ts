import type { Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';

const DAY_MS = 86_400_000;

/** When a retention job runs and what it keeps. */
export interface RetentionSchedule {
  /** Milliseconds between passes; 0 or less: never on a timer (`prune()` still works). */
  everyMs: number;
  /** Rows older than this many days (relative to the pass) go. */
  retentionDays: number;
}

/**
 * The schedule of a periodic retention job (the executor's checkpoint pruner, metering's raw-record
 * pruner): a pass every `everyMs` from bootstrap, one pass at a time (a `prune()` during a pass
 * joins it), a failed pass logged and left to the next one, and a shutdown that waits for the pass
 * in progress, whose loop should stop at its next batch once `stopped` is set.
 */
export abstract class RetentionJob implements OnApplicationBootstrap, OnApplicationShutdown {
  protected stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  protected abstract readonly log: Logger;

  /** @param what names the job in its failure log line */
  constructor(
    private readonly what: string,
    private readonly schedule: () => RetentionSchedule,
  ) {}

  /** Deletes what is older than `before`, batch by batch; returns how many rows went. */
  protected abstract pass(before: Date): Promise<number>;

  onApplicationBootstrap(): void {
    const every = this.schedule().everyMs;
    if (every <= 0) return;
    this.timer = setInterval(() => void this.prune().catch(() => undefined), every);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: deletes everything past retention (relative to `now`); returns how many. */
  prune(now = new Date()): Promise<number> {
    this.running ??= this.logged(
      new Date(now.getTime() - this.schedule().retentionDays * DAY_MS),
    ).finally(() => (this.running = undefined));
    return this.running;
  }

  private async logged(before: Date): Promise<number> {
    try {
      return await this.pass(before);
    } catch (err) {
      this.log.warn(
        `${this.what} pass failed (next one in ${this.schedule().everyMs} ms): ${(err as Error).message}`,
      );
      throw err;
    }
  }
}
