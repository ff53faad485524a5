import type { RunEventStream, RunStreamEventName } from '@aob/events';
import type { Logger } from '../agents/agent-definition';
import type { ExecutorMetrics } from './executor.metrics';

/** How long `flush` waits for pending appends: a hanging Redis must not hold a run's completion. */
const FLUSH_LIMIT_MS = 2_000;

/**
 * Appends one run's events to its Redis stream in call order: every append is sent at once on the
 * one shared connection, which executes commands in the order they were written, so tokens never
 * overtake each other or the terminal event, and appends of one tick share one write (see
 * RedisModule's auto-pipelining). Failures are logged and counted, never thrown: the stream is a
 * view for UIs, the run's truth is in Postgres and JetStream.
 */
export class RunStreamWriter {
  private tail: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(
    private readonly stream: RunEventStream,
    private readonly runId: string,
    private readonly log: Logger,
    private readonly metrics: ExecutorMetrics,
  ) {}

  append(event: RunStreamEventName, data: unknown): void {
    const appended = this.stream.append(this.runId, event, data).then(
      () => undefined,
      (err: unknown) => {
        this.metrics.streamWriteErrors.inc();
        // One line per run is enough: a dead Redis would otherwise log every token.
        if (this.failures++ === 0)
          this.log.warn({ err, event }, 'run stream append failed; the run carries on');
      },
    );
    const before = this.tail;
    this.tail = before.then(() => appended);
  }

  /** Waits for the appends so far (bounded by FLUSH_LIMIT_MS). */
  async flush(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.tail,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_LIMIT_MS))),
    ]);
    clearTimeout(timer);
  }
}
