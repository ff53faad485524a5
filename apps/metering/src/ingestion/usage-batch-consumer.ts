import { EventEmitter } from 'node:events';
import { Logger, type LoggerService } from '@nestjs/common';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { millis, type NatsConnection } from '@nats-io/nats-core';
import { counter, tracingEnabled, type MessageSpan } from '@aob/observability';
import { retryOnConnectionError, type ConnectionRetry } from '@aob/persistence';
import {
  describeFailure,
  redeliveriesCounter,
  retryDelayMs,
  settlementFor,
  startConsumerSpan,
  type ConsumerSpec,
  terminationInfo,
  type TerminationInfo,
} from '@aob/events';
import { MicroBatcher } from './micro-batcher';
import { UsageDecoder, type DecodedMessage } from './usage-decoder';
import type { EntryOutcome, UsageIngestionService } from './usage-ingestion.service';
import type { UsageEntry } from './usage-entry';

/** Transport id of UsageBatchConsumer (Nest `transportId`). */
export const USAGE_BATCH_TRANSPORT = Symbol.for('aob.metering.usage-batch');

export interface UsageBatchConsumerOptions {
  connection: NatsConnection;
  consumer: ConsumerSpec;
  ingestion: UsageIngestionService;
  /** Messages fetched and not yet settled, at most (flow control: the rest waits in the stream). */
  maxInFlight: number;
  /** Messages per pull request, and per batch (one transaction). */
  batchSize: number;
  /** Longest wait of a partial batch. */
  batchWaitMs: number;
  /** Batches written at once. */
  writers: number;
  /** Pull requests open at once: the next fetch overlaps the previous batch's commit. @default 2 */
  fetchers?: number;
  /** How long an unfilled pull request waits on the server (at least 1000). @default 1000 */
  fetchExpiresMs?: number;
  /** Called before every term() with the reason; if it throws, the message is nak'ed instead. */
  onTerminate: (info: TerminationInfo) => Promise<void>;
  logger?: LoggerService;
}

interface Item {
  msg: JsMsg;
  entry: UsageEntry;
  /** Tracing on: the message's `process metering.usage` span, ended once it is settled. */
  span: MessageSpan | undefined;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * The `metering` durable consumer, batch at a time: pull requests of `batchSize` messages
 * (`fetchers` of them open at once, bounded by `maxInFlight` unsettled messages), a lean decode
 * per message, one transaction per batch (UsageIngestionService.writeBatch), then one ack per
 * message, sent without waiting for the server's reply. A message is acked only after its batch
 * committed; poison is terminated with its reason recorded first; a failed batch is nak'ed with
 * backoff (terminated on its last delivery). Registered as a Nest custom transport, so it stops
 * (fetches end, batches commit, acks flushed) before the NATS connection and the database close.
 *
 * Every fetch is read to its end, never abandoned: on nats-server 2.9.10 unsubscribing under an
 * open pull request strands a delivery until ack_wait (NOTES-nats.md).
 */
export class UsageBatchConsumer extends Server implements CustomTransportStrategy {
  override transportId = USAGE_BATCH_TRANSPORT;

  private readonly log: LoggerService;
  private readonly decoder = new UsageDecoder();
  private readonly batcher: MicroBatcher<Item, void>;
  private readonly statusEvents = new EventEmitter();
  private readonly stopping = new AbortController();
  /** Fetched and not yet settled (the keep-alive timer sends working() for the old ones). */
  private readonly unsettled = new Map<JsMsg, number>();
  /** Pull-request credit already reserved but not yet received. */
  private reserved = 0;
  private creditWaiters: (() => void)[] = [];
  private ackWaitMs: number;
  private maxDeliver: number;
  private loops: Promise<void>[] = [];
  private keepAlive: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly settling = new Set<Promise<void>>();
  private readonly redeliveries = redeliveriesCounter();
  private readonly labels: { stream: string; consumer: string };
  /** A batch whose commit failed for want of Postgres is retried in place until it is back. */
  private readonly dbRetry: ConnectionRetry;
  /** Since when Postgres has been unreachable (logged once per outage, not per retry). */
  private outageSince: number | undefined;
  private readonly dependencyRetries = counter({
    name: 'aob_metering_dependency_retries_total',
    help: 'Batch commits retried because a dependency (postgres) was unreachable; the messages wait, held',
    labelNames: ['dependency'] as const,
  });

  constructor(private readonly options: UsageBatchConsumerOptions) {
    super();
    this.log = options.logger ?? new Logger(UsageBatchConsumer.name);
    this.labels = { stream: options.consumer.stream, consumer: options.consumer.durable };
    this.ackWaitMs = options.consumer.ackWaitMs;
    this.maxDeliver = options.consumer.maxDeliver;
    this.dbRetry = {
      // until close(): a batch still failing then is nak'ed (its deliveries are not spent before)
      signal: this.stopping.signal,
      onRetry: (err) => {
        this.dependencyRetries.inc({ dependency: 'postgres' });
        if (this.outageSince !== undefined) return;
        this.outageSince = Date.now();
        this.log.warn(
          `Postgres is unreachable (${(err as Error).message}); batches are held and retried until it is back`,
        );
      },
      onRecovered: () => {
        if (this.outageSince === undefined) return;
        this.log.log(`Postgres is reachable again after ${Date.now() - this.outageSince} ms`);
        this.outageSince = undefined;
      },
    };
    this.batcher = new MicroBatcher<Item, void>({
      maxSize: options.batchSize,
      maxWaitMs: options.batchWaitMs,
      maxConcurrentFlushes: options.writers,
      flush: (items) => this.write(items),
    });
  }

  async listen(callback: (...optionalParams: unknown[]) => unknown): Promise<void> {
    try {
      let started!: () => void;
      const first = new Promise<void>((resolve) => (started = resolve));
      this.loops.push(this.run(started));
      await first;
      callback();
    } catch (err) {
      callback(err);
    }
  }

  /** Stops fetching, lets every open pull request end, commits and acks what was fetched. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- the signature Nest's Server declares
  on<EventKey extends string = string, EventCallback extends Function = Function>(
    event: EventKey,
    callback: EventCallback,
  ): void {
    this.statusEvents.on(event, callback as unknown as (...args: unknown[]) => void);
  }

  unwrap<T>(): T {
    return this.options.connection as T;
  }

  /** Messages fetched and not yet acked, nak'ed or terminated. */
  get inFlightCount(): number {
    return this.unsettled.size;
  }

  private get name(): string {
    return `${this.options.consumer.stream}/${this.options.consumer.durable}`;
  }

  /** Looks the consumer up (retrying while it is missing), then runs the fetch loops. */
  private async run(started: () => void): Promise<void> {
    const { stream, durable } = this.options.consumer;
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!this.stopping.signal.aborted && !consumer) {
      try {
        const c = await jetstream(this.options.connection).consumers.get(stream, durable);
        const { config } = await c.info(true);
        this.ackWaitMs = config.ack_wait ? millis(config.ack_wait) : this.ackWaitMs;
        this.maxDeliver = config.max_deliver ?? this.maxDeliver;
        consumer = c;
      } catch (err) {
        this.log.error(`consumer ${this.name} unavailable: ${(err as Error).message}`);
        started();
        failures++;
        await sleep(Math.min(30_000, 250 * 2 ** Math.min(failures, 8)), this.stopping.signal);
      }
    }
    started();
    if (!consumer) return;
    this.log.log(
      `consuming ${this.name} in batches of ${this.options.batchSize} (ack_wait ${this.ackWaitMs} ms, max_deliver ${this.maxDeliver})`,
    );
    const interval = Math.max(100, Math.floor(this.ackWaitMs / 3));
    this.keepAlive = setInterval(() => this.sendWorking(interval), interval);
    const fetchers = Math.max(1, this.options.fetchers ?? 2);
    await Promise.all(Array.from({ length: fetchers }, () => this.fetchLoop(consumer)));
  }

  private async fetchLoop(consumer: Consumer): Promise<void> {
    const batch = this.options.batchSize;
    const expires = Math.max(1_000, this.options.fetchExpiresMs ?? 1_000);
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      await this.reserve(batch);
      if (this.stopping.signal.aborted) {
        this.release(batch);
        break;
      }
      let received = 0;
      try {
        const messages = await consumer.fetch({ max_messages: batch, expires });
        // read to the end (the request is filled or expires): see the class comment
        for await (const msg of messages) {
          received++;
          this.accept(msg);
        }
        failures = 0;
      } catch (err) {
        failures++;
        if (!this.stopping.signal.aborted)
          this.log.warn(`fetch from ${this.name} failed: ${(err as Error).message}`);
        await sleep(Math.min(10_000, 100 * 2 ** Math.min(failures, 7)), this.stopping.signal);
      } finally {
        // the credit of what did not come back; received messages give theirs back when settled
        this.release(batch - received);
      }
    }
  }

  /** Waits until `n` more messages may be in flight, and reserves them. */
  private async reserve(n: number): Promise<void> {
    while (
      !this.stopping.signal.aborted &&
      this.reserved + this.unsettled.size + n > Math.max(this.options.maxInFlight, n)
    ) {
      // drain() wakes every waiter after aborting
      await new Promise<void>((resolve) => this.creditWaiters.push(resolve));
    }
    this.reserved += n;
  }

  private release(n: number): void {
    this.reserved -= n;
    this.wakeFetchers();
  }

  private wakeFetchers(): void {
    if (this.creditWaiters.length === 0) return;
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w();
  }

  /** One fetched message: into the batch, acked (not ours to store), or terminated. Never throws. */
  private accept(msg: JsMsg): void {
    // received: its credit moves from `reserved` to `unsettled`
    this.reserved--;
    if (msg.info.deliveryCount > 1) this.redeliveries.inc(this.labels);
    this.unsettled.set(msg, Date.now());
    let decoded: DecodedMessage;
    try {
      decoded = this.decoder.decode(msg);
    } catch (err) {
      decoded = { kind: 'poison', code: 'InvalidEvent', reason: (err as Error).message };
    }
    if (decoded.kind === 'poison') {
      const { kind: _kind, ...rest } = decoded;
      this.track(this.terminate(msg, rest));
      return;
    }
    if (decoded.kind === 'other') {
      this.ack(msg);
      return;
    }
    if (decoded.tenantId !== undefined && decoded.tenantId !== decoded.record.tenantId) {
      this.track(
        this.terminate(msg, {
          code: 'InvalidEvent',
          reason: `usage event ${decoded.id}: tenantid attribute "${decoded.tenantId}" differs from data.tenantId "${decoded.record.tenantId}"`,
          id: decoded.id,
          type: decoded.type,
          tenantId: decoded.tenantId,
        }),
      );
      this.options.ingestion.countRejected(1);
      return;
    }
    this.batcher.push({
      msg,
      entry: { source: decoded.source, eventId: decoded.id, record: decoded.record },
      span: tracingEnabled() ? this.startSpan(msg, decoded) : undefined,
    });
  }

  /** The consumer span of a usage event, continuing the trace of the model call that caused it. */
  private startSpan(msg: JsMsg, decoded: Extract<DecodedMessage, { kind: 'usage' }>) {
    const traceparent = msg.headers?.get('ce-traceparent');
    const tracestate = msg.headers?.get('ce-tracestate');
    return startConsumerSpan(msg, this.options.consumer.durable, {
      id: decoded.id,
      type: decoded.type,
      source: decoded.source,
      data: decoded.record,
      ...(decoded.tenantId === undefined ? {} : { tenantId: decoded.tenantId }),
      ...(traceparent ? { traceparent } : {}),
      ...(tracestate ? { tracestate } : {}),
    });
  }

  /** Flush of one batch: commit, then settle every message. Never throws. */
  private async write(items: Item[]): Promise<void[]> {
    let outcomes: EntryOutcome[];
    try {
      // A Postgres outage is waited out here, the messages held (sendWorking keeps them alive and
      // maxInFlight stops the fetches), instead of nak'ing them into spending their deliveries.
      // Safe to repeat: usage records are unique by event id (a repeat is counted a duplicate).
      const entries = items.map((i) => i.entry);
      outcomes = await retryOnConnectionError(
        () => this.options.ingestion.writeBatch(entries),
        this.dbRetry,
      );
    } catch (error) {
      for (const { msg, entry, span } of items) {
        this.retry(msg, entry, error);
        span?.end(error);
      }
      return [];
    }
    for (let i = 0; i < items.length; i++) {
      const { msg, entry, span } = items[i]!;
      const outcome = outcomes[i]!;
      span?.end(outcome.ok ? undefined : outcome.error);
      if (outcome.ok) this.ack(msg);
      else
        this.track(
          this.terminate(msg, {
            code: outcome.error.code,
            reason: outcome.error.message,
            id: entry.eventId,
            type: msg.headers?.get('ce-type') || undefined,
            tenantId: entry.record.tenantId,
          }),
        );
    }
    return [];
  }

  /** nak(backoff) after a failure that is not the event's fault, or term on its last delivery. */
  private retry(msg: JsMsg, entry: UsageEntry, error: unknown): void {
    const delivery = { deliveryCount: msg.info.deliveryCount, maxDeliver: this.maxDeliver };
    const decision = settlementFor({ ok: false, error }, delivery, this.options.consumer);
    if (decision.action === 'nak') {
      this.settle(msg, () => msg.nak(decision.delayMs));
      return;
    }
    this.track(
      this.terminate(msg, {
        code: decision.action === 'term' ? decision.code : describeFailure(error).code,
        reason: decision.action === 'term' ? decision.reason : describeFailure(error).message,
        id: entry.eventId,
        tenantId: entry.record.tenantId,
      }),
    );
  }

  /** settle(msg, () => msg.ack()) without a closure per message. */
  private ack(msg: JsMsg): void {
    if (!this.unsettled.delete(msg)) return;
    try {
      msg.ack();
    } catch (err) {
      this.settleFailed(msg, err);
    }
    this.wakeFetchers();
  }

  private settleFailed(msg: JsMsg, err: unknown): void {
    // a closed connection: the server redelivers after ack_wait, which the idempotent write absorbs
    this.log.warn(
      `settling ${this.name} seq ${msg.info.streamSequence} failed: ${(err as Error).message}`,
    );
  }

  private settle(msg: JsMsg, how: () => void): void {
    if (!this.unsettled.delete(msg)) return;
    try {
      how();
    } catch (err) {
      this.settleFailed(msg, err);
    }
    this.wakeFetchers();
  }

  private track(p: Promise<void>): void {
    this.settling.add(p);
    void p.finally(() => this.settling.delete(p));
  }

  /** Records why (2.9.10 drops term reasons), then term(); nak instead if the record fails. */
  private async terminate(
    msg: JsMsg,
    why: { code: string; reason: string; id?: string; type?: string; tenantId?: string },
  ): Promise<void> {
    const info = terminationInfo(msg, this.options.consumer, {
      code: why.code,
      reason: why.reason,
      eventId: why.id,
      eventType: why.type,
      tenantId: why.tenantId,
    });
    const where = `${this.name} seq ${info.streamSeq} (${msg.subject}${why.id ? `, event ${why.id}` : ''})`;
    try {
      await this.options.onTerminate(info);
    } catch (err) {
      const delayMs = retryDelayMs(info.deliveryCount, this.options.consumer);
      this.settle(msg, () => msg.nak(delayMs));
      this.log.error(
        `recording the termination of ${where} failed (${(err as Error).message}); nak(${delayMs}) instead so it is not lost. Reason was ${why.code}: ${why.reason}`,
      );
      return;
    }
    // no reason argument: nats-server 2.9.10 ignores `+TERM <reason>` entirely (NOTES-nats.md)
    this.settle(msg, () => msg.term());
    this.log.warn(`terminated ${where}: ${why.code}: ${why.reason}`);
  }

  /** working() for messages held longer than a third of ack_wait (a slow commit, a queue behind it). */
  private sendWorking(olderThanMs: number): void {
    const before = Date.now() - olderThanMs;
    for (const [msg, at] of this.unsettled) {
      if (at > before) continue;
      try {
        msg.working();
      } catch {
        // connection closed: nothing to extend
      }
    }
  }

  private async drain(): Promise<void> {
    this.stopping.abort();
    this.wakeFetchers();
    // open pull requests end within their expiry; what they bring is still written and acked
    await Promise.allSettled(this.loops);
    await this.batcher.close();
    while (this.settling.size > 0) await Promise.allSettled([...this.settling]);
    if (this.keepAlive) clearInterval(this.keepAlive);
    const nc = this.options.connection;
    if (!nc.isClosed()) {
      try {
        // the acks are plain publishes: push them out before the connection goes
        await nc.flush();
      } catch (err) {
        this.log.warn(`NATS flush on close failed: ${(err as Error).message}`);
      }
    }
    this.statusEvents.removeAllListeners();
  }
}
