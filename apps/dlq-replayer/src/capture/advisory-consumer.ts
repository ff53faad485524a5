import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { BoundedPool, CONSUMERS, JETSTREAM, retryDelayMs } from '@aob/events';
import { DLQ_REPLAYER_CONFIG, type DlqReplayerConfig } from '../config';
import { advisoryKind, parseAdvisory } from './advisory';
import { DeadLetterCaptureService } from './dead-letter-capture.service';

const SPEC = CONSUMERS.dlqReplayer;
/** Pull requests expire after this, so a stop never waits long for an open one. */
const PULL_EXPIRES_MS = 5_000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Reads the AOB_ADVISORIES stream (durable `dlq-replayer`). Advisories are not CloudEvents, so this
 * is a plain pull-consume loop with the transport's discipline: a bounded pool of captures at once,
 * ack only after the entry is committed in Postgres, nak(backoff) when the capture fails.
 */
@Injectable()
export class AdvisoryConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger(AdvisoryConsumer.name);
  private readonly pool: BoundedPool;
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
    private readonly capture: DeadLetterCaptureService,
    @Inject(DLQ_REPLAYER_CONFIG) private readonly config: DlqReplayerConfig,
  ) {
    this.pool = new BoundedPool(config.DLQ_CAPTURE_CONCURRENCY);
  }

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  /** Stops pulling and lets running captures finish (before NATS and Postgres close). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping.abort();
    this.pool.close();
    await this.messages?.close().catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      try {
        const consumer = await this.js.consumers.get(SPEC.stream, SPEC.durable);
        const messages = await consumer.consume({
          max_messages: this.config.DLQ_CAPTURE_CONCURRENCY,
          expires: PULL_EXPIRES_MS,
          abort_on_missing_resource: true,
        });
        this.messages = messages;
        if (this.stopping.signal.aborted) break;
        this.log.log(`capturing dead-message advisories from ${SPEC.stream}/${SPEC.durable}`);
        for await (const msg of messages) {
          failures = 0;
          // Waiting for a slot here holds back the next message: consume() is serial.
          if (!(await this.pool.acquire())) {
            msg.nak();
            continue;
          }
          const done: Promise<void> = this.handle(msg).finally(() => {
            this.inFlight.delete(done);
            this.pool.release();
          });
          this.inFlight.add(done);
        }
        if (this.stopping.signal.aborted) break;
        const err = await messages.closed();
        this.log.warn(`advisory consumer stopped${err ? `: ${err.message}` : ''}; restarting it`);
      } catch (err) {
        if (this.stopping.signal.aborted) break;
        this.log.error(`advisory consumer unavailable: ${(err as Error).message}`);
      }
      failures++;
      await sleep(Math.min(30_000, 250 * 2 ** Math.min(failures, 8)), this.stopping.signal);
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    const kind = advisoryKind(msg.subject);
    const advisory = parseAdvisory(msg.data);
    if (!kind || !advisory) {
      // No retry can make it readable: drop it, loudly.
      this.log.error(
        `unreadable advisory on ${msg.subject} (seq ${msg.info.streamSequence}): acked`,
      );
      msg.ack();
      return;
    }
    try {
      await this.capture.capture(kind, advisory);
      msg.ack();
    } catch (err) {
      const delayMs = retryDelayMs(msg.info.deliveryCount, SPEC);
      msg.nak(delayMs);
      this.log.error(
        `capturing ${advisory.stream} seq ${advisory.stream_seq} failed (retry in ${delayMs} ms): ${(err as Error).message}`,
      );
    }
  }
}
