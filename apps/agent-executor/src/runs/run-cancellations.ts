import {
  decodeCloudEvent,
  EVENTS,
  JETSTREAM,
  JETSTREAM_MANAGER,
  runCancelRequestSchema,
  STREAMS,
} from '@aob/events';
import {
  DeliverPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from '../agents/agent-definition';
import { EXECUTOR_LOGGER } from '../executor.tokens';

/** Why a run stopped: it was cancelled (`aob.agent.cancel.v1`). The run ends `cancelled`. */
export class RunCancelledError extends Error {
  override readonly name = 'RunCancelledError';
  constructor(readonly reason: string) {
    super(`run cancelled: ${reason}`);
  }
}

interface CancelRequest {
  reason: string;
  /** When it was requested (the event's time), ms since the epoch: entries go after 24 h. */
  at: number;
}

/** Run ids are unique across tenants, but a request only ever counts for its own tenant's run. */
const keyOf = (tenantId: string, runId: string) => `${tenantId}/${runId}`;

/** How long a cancellation is remembered: the control stream's max_age. */
const REMEMBER_MS = STREAMS.AGENT_CONTROL.maxAgeMs;
const SWEEP_EVERY_MS = 10 * 60_000;

/**
 * The cancellations of the last 24 hours, followed from `AGENT_CONTROL` (`agent.control.cancel`)
 * with an ephemeral ordered consumer: every executor process reads the whole stream at start-up
 * (before it pulls any execution) and then follows it. A run is checked against it when it is
 * claimed (a queued run is never started), and a running run is aborted the moment its
 * cancellation arrives (its signal aborts: model streams close, the next step does not start).
 * One Map lookup per run: nothing on the claim path touches the network.
 */
@Injectable()
export class RunCancellations implements OnApplicationShutdown {
  private readonly cancelled = new Map<string, CancelRequest>();
  private readonly watchers = new Map<string, Set<(reason: string) => void>>();
  private messages: ConsumerMessages | undefined;
  private following: Promise<void> | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  /** Caught up with the stream: what arrives now is new. */
  private live = false;
  private idleHandler: ((tenantId: string, runId: string, reason: string) => void) | undefined;

  constructor(
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
    @Inject(JETSTREAM_MANAGER) private readonly jsm: JetStreamManager,
    @Inject(EXECUTOR_LOGGER) private readonly log: Logger,
  ) {}

  /**
   * Starts following the control stream and resolves once everything stored in it when this was
   * called has been read (so no execution is pulled before the cancellations it may be subject to).
   */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.following) return;
    const stream = STREAMS.AGENT_CONTROL.name;
    const info = await this.jsm.streams.info(stream);
    const lastSeq = info.state.messages > 0 ? info.state.last_seq : 0;
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve)).then(() => {
      this.live = true;
    });
    if (lastSeq === 0) caughtUp();
    this.following = this.follow(0, (seq) => {
      if (seq >= lastSeq) caughtUp();
    });
    this.sweeper = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.sweeper.unref();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `reading ${stream} up to seq ${lastSeq} took longer than ${timeoutMs} ms at start-up`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    this.log.info(
      { cancellations: this.cancelled.size, lastSeq },
      'control stream read; following it',
    );
  }

  /**
   * Reads the stream after `afterSeq` for as long as the process lives. The ordered consumer
   * recreates itself after most faults; should its iteration end anyway, a new one resumes after
   * the last message seen.
   */
  private async follow(afterSeq: number, onMessage: (seq: number) => void): Promise<void> {
    const stream = STREAMS.AGENT_CONTROL.name;
    let seen = afterSeq;
    while (!this.closed) {
      try {
        // Not filter_subjects (2.10+): the stream holds only control subjects.
        const consumer = await this.js.consumers.get(
          stream,
          seen === 0
            ? { deliver_policy: DeliverPolicy.All }
            : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seen + 1 },
        );
        const messages = await consumer.consume({ max_messages: 1_000 });
        this.messages = messages;
        if (this.closed) await messages.close();
        for await (const m of messages) {
          seen = m.seq;
          this.apply(m);
          onMessage(m.seq);
        }
      } catch (err) {
        if (!this.closed) this.log.error({ err }, 'following the control stream failed');
      }
      if (this.closed) return;
      this.log.warn({ afterSeq: seen }, 'following the control stream again');
      await new Promise((r) => setTimeout(r, 1_000).unref());
    }
  }

  /**
   * Called for a new cancellation (not the start-up backlog) of a run no delivery of this process
   * is running: the run may be queued, waiting for a retry, or held by a dead worker.
   */
  onCancelNotRunningHere(handler: (tenantId: string, runId: string, reason: string) => void): void {
    this.idleHandler = handler;
  }

  /** The reason the run was cancelled, if it was (by a request of the run's own tenant). */
  reason(tenantId: string, runId: string): string | undefined {
    return this.cancelled.get(keyOf(tenantId, runId))?.reason;
  }

  /**
   * Calls `onCancel` once when the run is cancelled: at once (synchronously) when it already is,
   * else when its cancellation arrives. Returns the function that stops watching.
   */
  watch(tenantId: string, runId: string, onCancel: (reason: string) => void): () => void {
    const already = this.reason(tenantId, runId);
    if (already !== undefined) {
      onCancel(already);
      return () => undefined;
    }
    const key = keyOf(tenantId, runId);
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    set.add(onCancel);
    return () => {
      set.delete(onCancel);
      if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key);
    };
  }

  private apply(m: JsMsg): void {
    let key: string;
    let tenantId: string;
    let runId: string;
    let request: CancelRequest;
    try {
      const ce = decodeCloudEvent({ headers: m.headers, data: m.data });
      if (ce.type !== EVENTS.agentCancel.type) return;
      const data = runCancelRequestSchema.parse(ce.data);
      const tenant = ce.tenantid;
      if (typeof tenant !== 'string' || tenant === '') throw new Error('the event has no tenantid');
      tenantId = tenant;
      runId = data.runId;
      const time = ce.time === undefined ? NaN : Date.parse(ce.time);
      key = keyOf(tenantId, data.runId);
      request = { reason: data.reason, at: Number.isNaN(time) ? Date.now() : time };
    } catch (err) {
      this.log.warn({ err, seq: m.seq }, 'ignored an invalid control event');
      return;
    }
    // A cancellation is never taken back; the first reason stays.
    if (this.cancelled.has(key)) return;
    this.cancelled.set(key, request);
    const watchers = this.watchers.get(key);
    if (!watchers && this.live && this.idleHandler) {
      try {
        this.idleHandler(tenantId, runId, request.reason);
      } catch (err) {
        this.log.warn({ err, run: key }, 'the cancellation handler threw');
      }
    }
    for (const onCancel of watchers ?? []) {
      try {
        onCancel(request.reason);
      } catch (err) {
        this.log.warn({ err, run: key }, 'a cancellation watcher threw');
      }
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - REMEMBER_MS;
    for (const [key, c] of this.cancelled) if (c.at < cutoff) this.cancelled.delete(key);
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await this.messages?.close().catch(() => undefined);
    await this.following;
  }
}
