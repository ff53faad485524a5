import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { JetStreamClient } from '@nats-io/jetstream';
import { JETSTREAM, replayDeadLetter } from '@aob/events';
import { counter } from '@aob/observability';
import { DeadLetterRepository, type DeadLetterRecord } from '@aob/persistence';
import { DLQ_REPLAYER_CONFIG, type DlqReplayerConfig } from '../config';
import { isPoison } from './replay-policy';

const sweptCounter = () =>
  counter({
    name: 'aob_dlq_swept_total',
    help: 'Dead letters whose quarantine ended, by what the sweeper did (replayed, parked)',
    labelNames: ['action'] as const,
  });

/**
 * Replays dead letters whose quarantine has ended, and parks those out of replays. Several
 * replicas sweep safely side by side (FOR UPDATE SKIP LOCKED in DeadLetterRepository.sweepDue).
 */
@Injectable()
export class QuarantineSweeper implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger(QuarantineSweeper.name);
  private readonly swept = sweptCounter();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
    private readonly deadLetters: DeadLetterRepository,
    @Inject(DLQ_REPLAYER_CONFIG) private readonly config: DlqReplayerConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      // Never two sweeps of this process at once: a slow one simply skips a tick.
      this.running ??= this.sweep()
        .then(() => undefined)
        .catch((err: unknown) => this.log.error(`sweep failed: ${(err as Error).message}`))
        .finally(() => (this.running = undefined));
    }, this.config.DLQ_SWEEP_INTERVAL_MS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One sweep; returns what it did. */
  async sweep(): Promise<{ replayed: number; parked: number }> {
    const result = await this.deadLetters.sweepDue(
      this.config.DLQ_SWEEP_BATCH,
      (entry) =>
        isPoison(entry.code) || entry.replays >= this.config.DLQ_MAX_REPLAYS ? 'park' : 'replay',
      (entry, replay) => this.publish(entry, replay),
      (entry, err) =>
        this.log.warn(
          `replay of dead letter ${entry.id} failed, retried next sweep: ${(err as Error).message}`,
        ),
    );
    if (result.replayed > 0) this.swept.inc({ action: 'replayed' }, result.replayed);
    if (result.parked > 0) this.swept.inc({ action: 'parked' }, result.parked);
    return result;
  }

  private publish(entry: DeadLetterRecord, replay: number) {
    return replayDeadLetter(this.js, entry.id, replay, {
      subject: entry.subject,
      headers: entry.headers,
      data: entry.data ?? new Uint8Array(),
    });
  }
}
