import { EventEmitter } from 'node:events';
import { DomainError } from '@aob/errors';
import {
  jetstream,
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { millis, type NatsConnection } from '@nats-io/nats-core';
import { Logger, type LoggerService } from '@nestjs/common';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { startMessageSpan, tracingEnabled, type MessageSpan } from '@aob/observability';
import { isObservable, lastValueFrom } from 'rxjs';
import { decodeCloudEventDetailed } from '../binding/cloud-event-codec';
import { EVENTS, eventByType, type ConsumerSpec } from '../catalog';
import { runIdOf } from '../jetstream/event-publisher';
import { redeliveriesCounter, trackJetStream } from '../jetstream/jetstream-metrics';
import { BoundedPool } from './bounded-pool';
import type { InboundEvent } from './inbound-event';
import { JetStreamContext } from './jetstream-context';
import {
  describeFailure,
  retryDelayMs,
  settlementFor,
  terminationInfo,
  type HandlingOutcome,
  type TerminationInfo,
} from './settlement';

const EXECUTE_TYPE = EVENTS.agentExecute.type;

/** Transport id of JetStreamServer (Nest `transportId`). */
export const JETSTREAM_TRANSPORT = Symbol.for('aob.jetstream');

export interface JetStreamServerOptions {
  /** A connection (the caller closes it) or a factory (the server drains and closes what it made). */
  connection: NatsConnection | (() => Promise<NatsConnection>);
  /** Durable pull consumers to read (they must exist: see provisionJetStream). */
  consumers: ConsumerSpec[];
  /** Handlers running at once in this process, across all consumers. @default 16 */
  concurrency?: number;
  /** Larger payloads are terminated unread. @default 1048576 (1 MiB) */
  maxMessageBytes?: number;
  /** How long close() waits for in-flight handlers before aborting them and releasing their messages. @default 25000 */
  drainTimeoutMs?: number;
  /** Called before every term() with the reason; if it throws, the message is nak'ed instead so nothing is lost. */
  onTerminate?: (info: TerminationInfo) => Promise<void> | void;
  /** @default a Nest Logger named JetStreamServer */
  logger?: LoggerService;
}

interface ConsumerRuntime {
  spec: ConsumerSpec;
  /** `{stream, consumer}` labels of this consumer's series, built once. */
  labels: { stream: string; consumer: string };
  ackWaitMs: number;
  maxDeliver: number;
  messages?: ConsumerMessages;
  loop?: Promise<void>;
}

interface InFlight {
  msg: JsMsg;
  settled: boolean;
  done?: Promise<void>;
}

/** Poison: no redelivery can make this message processable. */
class PoisonMessage extends DomainError {}

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

/** Pull requests expire after this: bounds how long close() waits for the last one to end. */
const PULL_EXPIRES_MS = 5_000;

/** The parts of nats.js' pull-consumer iterator that a loss-free stop needs (not in its public type). */
interface PullInternals {
  pull?: (...args: unknown[]) => void;
  pending?: { msgs: number };
}

/**
 * Stops a consume() without stranding deliveries. Unsubscribing while a pull request is still
 * open on the server makes 2.9.10 deliver into the void: that message returns only after ack_wait,
 * and another can be delivered twice (seen in this package's drain test). So: stop issuing pull
 * requests, keep the subscription until the open ones are filled or expire, then unsubscribe.
 * Messages that arrive meanwhile are released by the caller. Falls back to a plain close() if the
 * client's internals ever change shape.
 */
async function stopPulling(messages: ConsumerMessages | undefined): Promise<void> {
  if (!messages) return;
  const internals = messages as unknown as PullInternals;
  if (typeof internals.pull === 'function' && typeof internals.pending?.msgs === 'number') {
    internals.pull = () => undefined;
    const deadline = Date.now() + PULL_EXPIRES_MS + 1_000;
    while (internals.pending.msgs > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await messages.close();
}

/** Runs a handler to its end, Observable results included (the traced path runs it in a span's context). */
async function invokeHandler(
  handler: NonNullable<ReturnType<Server['getHandlerByPattern']>>,
  inbound: InboundEvent,
  ctx: JetStreamContext,
): Promise<void> {
  const result: unknown = await handler(inbound, ctx);
  if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
}

/** What a consumer span needs to know of a delivered CloudEvent (an InboundEvent has it all). */
export interface DeliveredEvent {
  id: string;
  type: string;
  source: string;
  subject?: string;
  tenantId?: string;
  traceparent?: string;
  tracestate?: string;
  data?: unknown;
}

/**
 * The `process <subject>` CONSUMER span of one JetStream delivery, continuing the trace the event
 * carries (`traceparent`); undefined when tracing is off. For consumers outside JetStreamServer
 * (metering's batch consumer): end it once the message is settled.
 */
export function startConsumerSpan(
  msg: JsMsg,
  durable: string,
  event: DeliveredEvent,
): MessageSpan | undefined {
  if (!tracingEnabled()) return undefined;
  return startMessageSpan(
    {
      operation: 'process',
      destination: msg.subject,
      consumerGroup: durable,
      messageId: event.id,
      eventType: event.type,
      eventSource: event.source,
      bodySize: msg.data.length,
      deliveryCount: msg.info.deliveryCount,
      ...(event.tenantId === undefined ? {} : { tenantId: event.tenantId }),
      ...runIdOf(event.subject, event.data, event.type === EXECUTE_TYPE ? event.id : undefined),
    },
    event,
  );
}

/**
 * NestJS transport for JetStream durable pull consumers. Handlers are registered with
 * `@EventPattern('<CloudEvent type>')` and receive `(InboundEvent, JetStreamContext)`; they return
 * (ack) or throw (DomainError retryable / any Error: nak with backoff; non-retryable: term).
 * Register JetStreamExceptionFilter so Nest passes handler errors through unchanged.
 */
export class JetStreamServer extends Server implements CustomTransportStrategy {
  override transportId = JETSTREAM_TRANSPORT;

  private readonly log: LoggerService;
  private readonly concurrency: number;
  private readonly maxMessageBytes: number;
  private readonly drainTimeoutMs: number;
  private readonly pool: BoundedPool;
  private readonly inFlight = new Set<InFlight>();
  private readonly statusEvents = new EventEmitter();
  /** close() was called: stop pulling and stop retry sleeps. */
  private readonly stopping = new AbortController();
  /** The shutdown grace expired: handlers should give up (JetStreamContext.signal). */
  private readonly shutdown = new AbortController();
  private runtimes: ConsumerRuntime[] = [];
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private ownsConnection = false;
  private closing: Promise<void> | undefined;
  private warnedAboutFilter = false;
  private readonly redeliveries = redeliveriesCounter();
  private untrackMetrics: (() => void) | undefined;
  /** Messages received during close(), released (nak) once no pull request is open any more. */
  private readonly held: JsMsg[] = [];
  private pullsStopped = false;
  private readonly handlers = new Map<
    string,
    NonNullable<ReturnType<Server['getHandlerByPattern']>>
  >();

  constructor(private readonly options: JetStreamServerOptions) {
    super();
    this.log = options.logger ?? new Logger(JetStreamServer.name);
    this.concurrency = options.concurrency ?? 16;
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 25_000;
    this.pool = new BoundedPool(this.concurrency);
  }

  async listen(callback: (...optionalParams: unknown[]) => unknown): Promise<void> {
    try {
      const { connection } = this.options;
      this.ownsConnection = typeof connection === 'function';
      this.nc = typeof connection === 'function' ? await connection() : connection;
      this.js = jetstream(this.nc);
      this.untrackMetrics = trackJetStream(this.nc, { consumers: this.options.consumers });
      void this.watchConnection(this.nc);
      this._status$.next('connected');
      const started = this.options.consumers.map((spec) => {
        const runtime: ConsumerRuntime = {
          spec,
          labels: { stream: spec.stream, consumer: spec.durable },
          ackWaitMs: spec.ackWaitMs,
          maxDeliver: spec.maxDeliver,
        };
        this.runtimes.push(runtime);
        let markStarted!: () => void;
        const firstAttempt = new Promise<void>((resolve) => (markStarted = resolve));
        runtime.loop = this.runConsumer(runtime, markStarted);
        return firstAttempt;
      });
      // Returns once each consumer is pulling (or has logged why it cannot yet: it keeps retrying).
      await Promise.all(started);
      callback();
    } catch (err) {
      callback(err);
    }
  }

  /** Stops pulling, lets in-flight handlers finish (drainTimeoutMs), releases the rest. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  /** NATS connection status events by type: `disconnect`, `reconnect`, `reconnecting`, `error`, ... */
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- the signature Nest's Server declares
  on<EventKey extends string = string, EventCallback extends Function = Function>(
    event: EventKey,
    callback: EventCallback,
  ): void {
    this.statusEvents.on(event, callback as unknown as (...args: unknown[]) => void);
  }

  unwrap<T>(): T {
    if (!this.nc) throw new Error('JetStreamServer is not listening yet: call listen() first');
    return this.nc as T;
  }

  /** Handlers running now (for tests and health checks). */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  private get isClosing(): boolean {
    return this.stopping.signal.aborted;
  }

  private async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      this.statusEvents.emit(status.type, status);
      if (status.type === 'disconnect') {
        this.log.warn(
          `NATS disconnected from ${String((status as { server?: string }).server ?? '')}`,
        );
        this._status$.next('disconnected');
      } else if (status.type === 'reconnect') {
        this.log.log('NATS reconnected');
        this._status$.next('connected');
      } else if (status.type === 'reconnecting') {
        this._status$.next('reconnecting');
      }
    }
  }

  private async runConsumer(rt: ConsumerRuntime, markStarted: () => void): Promise<void> {
    const name = `${rt.spec.stream}/${rt.spec.durable}`;
    let failures = 0;
    while (!this.isClosing) {
      try {
        const consumer = await this.js!.consumers.get(rt.spec.stream, rt.spec.durable);
        const { config } = await consumer.info(true);
        rt.ackWaitMs = config.ack_wait ? millis(config.ack_wait) : rt.spec.ackWaitMs;
        rt.maxDeliver = config.max_deliver ?? rt.spec.maxDeliver;
        if (this.isClosing) break;
        // Small batches: messages buffered in the client wait for a pool slot while their ack_wait runs.
        const messages = await consumer.consume({
          max_messages: Math.min(this.concurrency, 256),
          expires: PULL_EXPIRES_MS,
          abort_on_missing_resource: true,
        });
        rt.messages = messages;
        if (this.isClosing) {
          await messages.close();
          break;
        }
        this.log.log(
          `consuming ${name} (ack_wait ${rt.ackWaitMs} ms, max_deliver ${rt.maxDeliver})`,
        );
        markStarted();
        void this.watchConsumer(messages, name);
        for await (const msg of messages) {
          failures = 0;
          await this.dispatch(msg, rt);
        }
        if (this.isClosing) break;
        const err = await messages.closed();
        this.log.warn(`consumer ${name} stopped${err ? `: ${err.message}` : ''}; re-creating it`);
      } catch (err) {
        if (this.isClosing) break;
        this.log.error(`consumer ${name} unavailable: ${(err as Error).message}`);
      }
      markStarted();
      failures++;
      const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 8));
      await sleep(delay, this.stopping.signal);
    }
    markStarted();
  }

  private async watchConsumer(messages: ConsumerMessages, name: string): Promise<void> {
    try {
      for await (const s of messages.status()) {
        if (
          s.type === 'consumer_deleted' ||
          s.type === 'consumer_not_found' ||
          s.type === 'stream_not_found'
        ) {
          this.log.warn(`consumer ${name}: ${s.type}`);
        } else if (s.type === 'heartbeats_missed' && s.count % 2 === 0) {
          this.log.warn(`consumer ${name}: ${s.count} heartbeats missed`);
        }
      }
    } catch {
      // The status iterator ends with the consumer; the consume loop reports why.
    }
  }

  /** Hands one message to the pool. Awaits only a free slot, never the handler (consume() is serial). */
  private async dispatch(msg: JsMsg, rt: ConsumerRuntime): Promise<void> {
    if (this.isClosing) {
      // Arrived after close(): release it for another worker, once our pull requests are over
      // (a nak now could be redelivered straight back into one of them).
      if (this.pullsStopped) msg.nak();
      else this.held.push(msg);
      return;
    }
    if (!this.pool.tryAcquire()) {
      // Keep the message we are holding alive while we wait for a slot.
      const keepAlive = setInterval(() => msg.working(), this.workingIntervalMs(rt));
      const acquired = await this.pool.acquire();
      clearInterval(keepAlive);
      if (!acquired) {
        if (this.pullsStopped) msg.nak();
        else this.held.push(msg);
        return;
      }
    }
    if (msg.info.deliveryCount > 1) this.redeliveries.inc(rt.labels);
    const entry: InFlight = { msg, settled: false };
    this.inFlight.add(entry);
    entry.done = this.process(entry, rt).finally(() => {
      this.inFlight.delete(entry);
      this.pool.release();
    });
  }

  private workingIntervalMs(rt: ConsumerRuntime): number {
    return Math.max(100, Math.floor(rt.ackWaitMs / 3));
  }

  private async process(entry: InFlight, rt: ConsumerRuntime): Promise<void> {
    const { msg } = entry;
    const keepAlive = setInterval(() => {
      if (!entry.settled) msg.working();
    }, this.workingIntervalMs(rt));
    const meta: Pick<TerminationInfo, 'eventId' | 'eventType' | 'tenantId'> = {};
    let outcome: HandlingOutcome;
    // Tracing on: a CONSUMER span, child of the event's traceparent, around handler and settlement.
    let span: MessageSpan | undefined;
    try {
      const { inbound, handler } = this.prepare(msg, rt, meta);
      const ctx = new JetStreamContext(
        msg,
        { stream: rt.spec.stream, durable: rt.spec.durable, maxDeliver: rt.maxDeliver },
        this.shutdown.signal,
      );
      if (tracingEnabled()) {
        span = startConsumerSpan(msg, rt.spec.durable, inbound);
        await span!.run(invokeHandler, handler, inbound, ctx);
      } else {
        const result: unknown = await handler(inbound, ctx);
        if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
      }
      outcome = { ok: true };
    } catch (error) {
      outcome = { ok: false, error, poison: error instanceof PoisonMessage };
      this.noticeSwallowedError(error);
    }
    let settlement: string | undefined;
    try {
      settlement = await this.settle(entry, rt, outcome, meta);
    } catch (err) {
      this.log.error(
        `settling ${rt.spec.stream} seq ${msg.info.streamSequence} failed: ${(err as Error).message}`,
      );
    } finally {
      clearInterval(keepAlive);
    }
    if (span !== undefined) {
      if (settlement !== undefined) span.setAttribute('messaging.nats.settlement', settlement);
      span.end(outcome.ok ? undefined : outcome.error);
    }
  }

  /** Size check, CloudEvent decode, catalog lookup and schema validation, handler lookup. */
  private prepare(
    msg: JsMsg,
    rt: ConsumerRuntime,
    meta: Pick<TerminationInfo, 'eventId' | 'eventType' | 'tenantId'>,
  ): { inbound: InboundEvent; handler: NonNullable<ReturnType<Server['getHandlerByPattern']>> } {
    if (msg.data.length > this.maxMessageBytes) {
      throw new PoisonMessage(
        'PayloadTooLarge',
        `payload of ${msg.data.length} bytes exceeds the limit of ${this.maxMessageBytes} bytes`,
      );
    }
    let decoded;
    try {
      decoded = decodeCloudEventDetailed(msg);
    } catch (err) {
      throw new PoisonMessage('InvalidEvent', (err as Error).message, { cause: err });
    }
    const { event, attributes } = decoded;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    meta.eventId = event.id;
    meta.eventType = event.type;
    meta.tenantId = str(attributes.tenantid);
    const definition = eventByType(event.type);
    if (!definition)
      throw new PoisonMessage(
        'InvalidEvent',
        `unknown event type "${event.type}" (not in the AOB event catalog)`,
      );
    const parsed = definition.schema.safeParse(event.data);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      throw new PoisonMessage(
        'InvalidEvent',
        `data of ${event.type} does not match its schema: ${issues}`,
      );
    }
    const handler = this.handlerFor(event.type);
    if (!handler) {
      throw new PoisonMessage(
        'InvalidEvent',
        `no handler for event type "${event.type}" on consumer ${rt.spec.stream}/${rt.spec.durable}`,
      );
    }
    const inbound: InboundEvent = {
      id: event.id,
      type: event.type,
      source: event.source,
      subject: event.subject,
      time: str(attributes.time),
      tenantId: meta.tenantId,
      traceparent: str(attributes.traceparent),
      tracestate: str(attributes.tracestate),
      data: parsed.data,
      event,
    };
    return { inbound, handler };
  }

  /** Nest's lookup normalises the pattern (a JSON.parse attempt that throws) on every call: cache hits per type. */
  private handlerFor(type: string): ReturnType<Server['getHandlerByPattern']> {
    let handler = this.handlers.get(type);
    if (!handler) {
      handler = this.getHandlerByPattern(type) ?? undefined;
      if (handler) this.handlers.set(type, handler);
    }
    return handler ?? null;
  }

  /** Settles the message; returns what was done (`ack`, `nak`, `term`), undefined when nothing was. */
  private async settle(
    entry: InFlight,
    rt: ConsumerRuntime,
    outcome: HandlingOutcome,
    meta: Pick<TerminationInfo, 'eventId' | 'eventType' | 'tenantId'>,
  ): Promise<'ack' | 'nak' | 'term' | undefined> {
    // Already released by close() after the grace period: another worker owns it now.
    if (entry.settled) return undefined;
    const { msg } = entry;
    const delivery = { deliveryCount: msg.info.deliveryCount, maxDeliver: rt.maxDeliver };
    const decision = settlementFor(outcome, delivery, rt.spec);
    const where = `${rt.spec.stream}/${rt.spec.durable} seq ${msg.info.streamSequence} (${msg.subject}${meta.eventId ? `, event ${meta.eventId}` : ''})`;
    if (decision.action === 'ack') {
      entry.settled = true;
      // Unconfirmed ack (no ackAck round trip): the handler's effects are durable by now, so an ack
      // lost on the way only means a redelivery, which handlers must absorb anyway (at-least-once).
      // close() flushes the connection, so acks of finished handlers are sent before it returns.
      msg.ack();
      return 'ack';
    }
    if (decision.action === 'nak') {
      entry.settled = true;
      msg.nak(decision.delayMs);
      this.log.warn(
        `retrying ${where} in ${decision.delayMs} ms (delivery ${delivery.deliveryCount}/${delivery.maxDeliver}): ${describeFailure(outcome.ok ? undefined : outcome.error).message}`,
      );
      return 'nak';
    }
    const info = terminationInfo(msg, rt.spec, {
      code: decision.code,
      reason: decision.reason,
      ...meta,
    });
    if (this.options.onTerminate) {
      try {
        await this.options.onTerminate(info);
      } catch (err) {
        if (entry.settled) return undefined;
        entry.settled = true;
        const delayMs = retryDelayMs(delivery.deliveryCount, rt.spec);
        msg.nak(delayMs);
        this.log.error(
          `onTerminate failed for ${where} (${(err as Error).message}); nak(${delayMs}) instead of term so the message is not lost. Reason was ${decision.code}: ${decision.reason}`,
        );
        return 'nak';
      }
    }
    if (entry.settled) return undefined;
    entry.settled = true;
    // No reason argument: nats-server 2.9.10 ignores `+TERM <reason>` entirely (NOTES-nats.md).
    msg.term();
    this.log.warn(
      `terminated ${where} after ${delivery.deliveryCount} deliveries: ${decision.code}: ${decision.reason}`,
    );
    return 'term';
  }

  /** Nest's default filter turns errors into `{status:'error', message}`: say once how to fix it. */
  private noticeSwallowedError(error: unknown): void {
    if (this.warnedAboutFilter || error instanceof Error) return;
    const e = error as { status?: unknown; message?: unknown } | null;
    if (e && e.status === 'error' && e.message === 'Internal server error') {
      this.warnedAboutFilter = true;
      this.log.warn(
        'a handler error reached the transport as Nest\'s generic "Internal server error": register JetStreamExceptionFilter so DomainError codes and retryable flags are honoured',
      );
    }
  }

  private async drain(): Promise<void> {
    this.stopping.abort();
    this.untrackMetrics?.();
    this.pool.close();
    const bounded = <T>(p: Promise<T>, ms: number) =>
      Promise.race([p, new Promise<void>((r) => setTimeout(r, ms).unref())]);
    const running = [...this.inFlight].flatMap((e) => (e.done ? [e.done] : []));
    if (running.length > 0)
      this.log.log(
        `draining ${running.length} in-flight message(s), up to ${this.drainTimeoutMs} ms`,
      );
    // The grace period and stopping the pulls run side by side; handlers hear the abort on time.
    const handlersDone = bounded(Promise.allSettled(running), this.drainTimeoutMs).then(() =>
      this.shutdown.abort(),
    );
    await Promise.allSettled(this.runtimes.map((rt) => stopPulling(rt.messages)));
    this.pullsStopped = true;
    for (const msg of this.held.splice(0)) msg.nak();
    await handlersDone;
    // Released only now that no pull request of ours is open, so the redelivery goes elsewhere.
    for (const entry of this.inFlight) {
      if (entry.settled) continue;
      entry.settled = true;
      // nak(0): immediate redelivery to another worker instead of waiting out ack_wait.
      entry.msg.nak();
      this.log.warn(
        `shutdown grace expired: released ${entry.msg.subject} seq ${entry.msg.info.streamSequence} for redelivery`,
      );
    }
    await bounded(
      Promise.allSettled(this.runtimes.flatMap((rt) => (rt.loop ? [rt.loop] : []))),
      5_000,
    );
    const nc = this.nc;
    if (nc && !nc.isClosed()) {
      try {
        // Both push the final acks/naks out before returning.
        if (this.ownsConnection) await nc.drain();
        else await nc.flush();
      } catch (err) {
        this.log.warn(
          `NATS ${this.ownsConnection ? 'drain' : 'flush'} on close failed: ${(err as Error).message}`,
        );
      }
    }
    this._status$.next('disconnected');
    this.statusEvents.removeAllListeners();
  }
}
