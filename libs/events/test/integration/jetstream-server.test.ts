import { DomainError } from '@aob/errors';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { CloudEvent } from 'cloudevents';
import {
  EVENTS,
  EventPublisher,
  JetStreamContext,
  JetStreamServer,
  provisionJetStream,
  type ConsumerSpec,
  type InboundEvent,
  type JetStreamServerOptions,
  type TerminationInfo,
} from '@aob/events';
import {
  eventually,
  natsFixture,
  quietLogger,
  sleep,
  testConsumer,
  type NatsFixture,
} from './support';

// Private nats-server per suite, and close() waits for open pull requests (up to 5 s).
jest.setTimeout(60_000);

type Handler = (
  event: InboundEvent<{ agent: string; input: unknown }>,
  ctx: JetStreamContext,
) => Promise<unknown>;

describe('JetStreamServer (private nats-server)', () => {
  let nats: NatsFixture;
  let publisher: EventPublisher;
  const servers: JetStreamServer[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    publisher = new EventPublisher(nats.js, 'aob://test');
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await nats.close();
  });

  async function startServer(
    spec: ConsumerSpec,
    handler: Handler,
    opts: Partial<JetStreamServerOptions> = {},
  ) {
    await provisionJetStream(nats.jsm, { streams: [], consumers: [spec] });
    const server = new JetStreamServer({
      connection: nats.nc,
      consumers: [spec],
      logger: quietLogger,
      ...opts,
    });
    server.addHandler(EVENTS.agentExecute.type, handler as never, true);
    servers.push(server);
    await new Promise<void>(
      (resolve, reject) =>
        void server.listen((err?: unknown) =>
          err ? reject(err instanceof Error ? err : new Error(JSON.stringify(err))) : resolve(),
        ),
    );
    return server;
  }

  const publish = (subject: string, agent: string, input: unknown = {}, id?: string) =>
    publisher.publish(
      'agentExecute',
      { agent, input: input as never },
      { subject, tenantId: 'acme', ...(id ? { id } : {}) },
    );

  async function consumerState(spec: ConsumerSpec) {
    const info = await nats.jsm.consumers.info(spec.stream, spec.durable);
    return {
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      redelivered: info.num_redelivered,
    };
  }

  it('acks on success and hands the handler a typed InboundEvent and a JetStreamContext', async () => {
    const { spec, agent, subject } = testConsumer();
    const seen: { inbound: InboundEvent; ctx: JetStreamContext }[] = [];
    await startServer(spec, async (inbound, ctx) => {
      seen.push({ inbound, ctx });
    });
    const published = await publish(subject, agent, { n: 1 });
    await eventually(() => seen.length === 1, 'the handler');
    const [{ inbound, ctx }] = seen as [(typeof seen)[number]];
    expect(inbound).toMatchObject({
      id: published.id,
      type: 'aob.agent.execute.v1',
      source: 'aob://test',
      tenantId: 'acme',
      data: { agent, input: { n: 1 } },
    });
    expect(ctx).toBeInstanceOf(JetStreamContext);
    expect(ctx).toMatchObject({
      natsSubject: subject,
      stream: 'AGENT_EXECUTION',
      durable: spec.durable,
      streamSeq: published.seq,
      deliveryCount: 1,
      maxDeliver: 5,
      isLastDelivery: false,
    });
    expect(ctx.signal.aborted).toBe(false);
    await eventually(async () => (await consumerState(spec)).ackPending === 0, 'the ack');
    expect(await consumerState(spec)).toEqual({ pending: 0, ackPending: 0, redelivered: 0 });
  });

  it('naks retryable errors with a delay and succeeds on a later delivery', async () => {
    const { spec, agent, subject } = testConsumer();
    const deliveries: { at: number; count: number }[] = [];
    const terminated: TerminationInfo[] = [];
    await startServer(
      spec,
      async (_e, ctx) => {
        deliveries.push({ at: Date.now(), count: ctx.deliveryCount });
        if (ctx.deliveryCount === 1)
          throw new DomainError('Unavailable', 'provider down', {
            retryable: true,
            details: { retryAfterMs: 400 },
          });
        if (ctx.deliveryCount === 2) throw new Error('plain errors are retried too');
      },
      { onTerminate: (t) => void terminated.push(t) },
    );
    await publish(subject, agent);
    await eventually(() => deliveries.length === 3, 'three deliveries');
    await eventually(async () => (await consumerState(spec)).ackPending === 0, 'the final ack');
    expect(deliveries.map((d) => d.count)).toEqual([1, 2, 3]);
    // retryAfterMs was honoured: nak(400), not an immediate nak and not the 2 s ack_wait.
    const gap = deliveries[1]!.at - deliveries[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(350);
    expect(gap).toBeLessThan(1_500);
    expect(terminated).toEqual([]);
    await sleep(300);
    expect(deliveries).toHaveLength(3);
  });

  it('terminates poison messages at once, with the reason, while the rest of the batch completes', async () => {
    const { spec, agent, subject } = testConsumer({ ackWaitMs: 1_000 });
    const handled: string[] = [];
    const terminated: TerminationInfo[] = [];
    await startServer(
      spec,
      async (e) => {
        await sleep(50);
        handled.push(e.id);
      },
      { onTerminate: (t) => void terminated.push(t), maxMessageBytes: 8 * 1024, concurrency: 4 },
    );
    const good1 = await publish(subject, agent, { i: 1 });
    await nats.js.publish(subject, 'this is not a cloudevent');
    const good2 = await publish(subject, agent, { i: 2 });
    const invalid = new CloudEvent<unknown>({
      id: 'bad-data',
      source: 's',
      type: 'aob.agent.execute.v1',
      tenantid: 'acme',
      data: { agent: 'NOT VALID', input: 1 },
    });
    await publisher.publishCloudEvent(subject, invalid);
    const unknown = new CloudEvent<unknown>({
      id: 'bad-type',
      source: 's',
      type: 'com.example.unknown',
      data: {},
    });
    await publisher.publishCloudEvent(subject, unknown);
    const big = await publish(subject, agent, { blob: 'x'.repeat(10 * 1024) }, 'too-big');
    const h = natsHeaders();
    h.set('ce-specversion', '1.0');
    h.set('ce-id', 'bad-escape');
    h.set('ce-source', 's');
    h.set('ce-type', 'aob.agent.execute.v1');
    h.set('ce-subject', '%C0%A0');
    await nats.js.publish(subject, '{}', { headers: h });
    const good3 = await publish(subject, agent, { i: 3 });

    await eventually(
      () => handled.length === 3 && terminated.length === 5,
      'good messages handled and poison terminated',
    );
    expect(handled.sort()).toEqual([good1.id, good2.id, good3.id].sort());
    const byId = (id: string | undefined) => terminated.find((t) => t.eventId === id);
    expect(
      terminated.every(
        (t) =>
          t.deliveryCount === 1 &&
          t.stream === 'AGENT_EXECUTION' &&
          t.durable === spec.durable &&
          t.natsSubject === subject,
      ),
    ).toBe(true);
    expect(
      terminated.find(
        (t) => t.eventId === undefined && /structured payload is not JSON/.test(t.reason),
      ),
    ).toMatchObject({ code: 'InvalidEvent' });
    expect(byId('bad-data')).toMatchObject({
      code: 'InvalidEvent',
      eventType: 'aob.agent.execute.v1',
      tenantId: 'acme',
      reason: expect.stringContaining('agent'),
    });
    expect(byId('bad-type')).toMatchObject({
      code: 'InvalidEvent',
      reason: expect.stringContaining('unknown event type "com.example.unknown"'),
    });
    expect(terminated.find((t) => t.code === 'PayloadTooLarge')).toMatchObject({
      streamSeq: big.seq,
      reason: expect.stringMatching(/exceeds the limit of 8192 bytes/),
    });
    expect(terminated.find((t) => /UTF-8/.test(t.reason))).toMatchObject({ code: 'InvalidEvent' });

    // term() really stuck: nothing comes back after ack_wait.
    await sleep(1_600);
    expect(terminated).toHaveLength(5);
    expect(handled).toHaveLength(3);
    expect(await consumerState(spec)).toEqual({ pending: 0, ackPending: 0, redelivered: 0 });
  });

  it('terminates on a non-retryable DomainError and on the last delivery of a retryable one', async () => {
    const { spec, agent, subject } = testConsumer({ maxDeliver: 2 });
    const terminated: TerminationInfo[] = [];
    const calls: number[] = [];
    await startServer(
      spec,
      async (e, ctx) => {
        calls.push(ctx.deliveryCount);
        if ((e.data.input as { mode: string }).mode === 'permanent')
          throw new DomainError('UnknownAgent', 'no such agent');
        expect(ctx.isLastDelivery).toBe(ctx.deliveryCount === 2);
        throw new DomainError('Timeout', 'too slow', { retryable: true });
      },
      { onTerminate: (t) => void terminated.push(t) },
    );
    const permanent = await publish(subject, agent, { mode: 'permanent' });
    const transient = await publish(subject, agent, { mode: 'transient' });
    await eventually(() => terminated.length === 2, 'two terminations');
    expect(terminated.find((t) => t.eventId === permanent.id)).toMatchObject({
      code: 'UnknownAgent',
      reason: 'no such agent',
      deliveryCount: 1,
      tenantId: 'acme',
    });
    expect(terminated.find((t) => t.eventId === transient.id)).toMatchObject({
      code: 'Timeout',
      reason: 'gave up after 2 deliveries: too slow',
      deliveryCount: 2,
    });
    expect(calls.sort()).toEqual([1, 1, 2]);
    await eventually(async () => (await consumerState(spec)).ackPending === 0, 'nothing pending');
  });

  it('naks instead of terming when onTerminate fails, so the dead letter is not lost', async () => {
    const { spec, agent, subject } = testConsumer();
    let attempts = 0;
    const recorded: TerminationInfo[] = [];
    await startServer(
      spec,
      async () => {
        throw new DomainError('InvalidRequest', 'bad input');
      },
      {
        onTerminate: async (t) => {
          attempts++;
          if (attempts === 1) throw new Error('DLQ store down');
          recorded.push(t);
        },
      },
    );
    await publish(subject, agent);
    await eventually(() => recorded.length === 1, 'the second termination attempt');
    expect(attempts).toBe(2);
    expect(recorded[0]).toMatchObject({ code: 'InvalidRequest', deliveryCount: 2 });
  });

  it('never runs more handlers at once than `concurrency`', async () => {
    const { spec, agent, subject } = testConsumer();
    let running = 0;
    let maxRunning = 0;
    let done = 0;
    await startServer(
      spec,
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(60);
        running--;
        done++;
      },
      { concurrency: 3 },
    );
    await Promise.all(Array.from({ length: 24 }, (_, i) => publish(subject, agent, { i })));
    await eventually(() => done === 24, 'all 24 handled');
    expect(maxRunning).toBe(3);
  });

  it('sends working() so a handler longer than ack_wait is not redelivered', async () => {
    const { spec, agent, subject } = testConsumer({ ackWaitMs: 1_000 });
    const calls: number[] = [];
    let finished = 0;
    await startServer(spec, async (_e, ctx) => {
      calls.push(ctx.deliveryCount);
      await sleep(2_600);
      finished++;
    });
    await publish(subject, agent);
    await eventually(() => finished === 1, 'the slow handler', 8_000);
    await sleep(300);
    expect(calls).toEqual([1]);
    expect(await consumerState(spec)).toEqual({ pending: 0, ackPending: 0, redelivered: 0 });
  });

  it('drains on close: in-flight handlers finish and are acked, the rest goes to the next worker, nothing twice', async () => {
    const { spec, agent, subject } = testConsumer({ ackWaitMs: 30_000 });
    const completedByFirst: string[] = [];
    const startedByFirst: string[] = [];
    const first = await startServer(
      spec,
      async (e) => {
        startedByFirst.push(e.id);
        await sleep(300);
        completedByFirst.push(e.id);
      },
      { concurrency: 4 },
    );
    const ids = (
      await Promise.all(Array.from({ length: 12 }, (_, i) => publish(subject, agent, { i })))
    ).map((r) => r.id);
    await eventually(() => startedByFirst.length >= 4, 'the first batch to start');
    await first.close();
    await first.close(); // idempotent
    expect(completedByFirst.sort()).toEqual(startedByFirst.sort());
    expect(first.inFlightCount).toBe(0);

    const bySecond: string[] = [];
    await startServer(spec, async (e) => void bySecond.push(e.id), { concurrency: 8 });
    // ack_wait is 30 s: finishing within a few seconds proves released messages were nak'ed, not timed out.
    await eventually(
      () => completedByFirst.length + bySecond.length === ids.length,
      'every message handled once',
      8_000,
    );
    expect(bySecond.filter((id) => completedByFirst.includes(id))).toEqual([]);
    expect([...completedByFirst, ...bySecond].sort()).toEqual([...ids].sort());
    await sleep(200);
    expect(completedByFirst.length + bySecond.length).toBe(ids.length);
  });

  it('on close after the grace period aborts the signal and releases the message for immediate redelivery', async () => {
    const { spec, agent, subject } = testConsumer({ ackWaitMs: 30_000 });
    let abortedAt = 0;
    let finishFirst!: () => void;
    const firstFinished = new Promise<void>((resolve) => (finishFirst = resolve));
    const first = await startServer(
      spec,
      async (_e, ctx) => {
        ctx.signal.addEventListener('abort', () => (abortedAt = Date.now()));
        await firstFinished; // a handler that ignores the signal
      },
      { drainTimeoutMs: 200 },
    );
    const published = await publish(subject, agent);
    await eventually(() => first.inFlightCount === 1, 'the handler to start');
    const closing = Date.now();
    await first.close();
    // The signal fires when the 200 ms grace expires; close() itself also waits for its open pull
    // request to end (up to 5 s) before releasing the message.
    expect(abortedAt - closing).toBeGreaterThanOrEqual(150);
    expect(abortedAt - closing).toBeLessThan(1_000);
    expect(Date.now() - closing).toBeLessThan(7_000);

    const second: string[] = [];
    await startServer(spec, async (e) => void second.push(e.id));
    // ack_wait is 30 s: arriving within 5 s proves the message was nak'ed on close.
    // (The delivery count may read 1 again: 2.9 un-counts a redelivery sent to the closed pull's inbox.)
    await eventually(() => second.length === 1, 'redelivery to the next worker', 5_000);
    expect(second).toEqual([published.id]);
    await eventually(
      async () => (await consumerState(spec)).ackPending === 0,
      'the ack by the next worker',
    );
    // The abandoned handler finishing late must not settle a message it no longer owns.
    finishFirst();
    await sleep(100);
    expect(first.inFlightCount).toBe(0);
  });

  it('re-creates its consumer after it is deleted, and rides out a NATS restart', async () => {
    const { spec, agent, subject } = testConsumer();
    const handled: string[] = [];
    await startServer(spec, async (e) => void handled.push(e.id));
    const a = await publish(subject, agent);
    await eventually(() => handled.includes(a.id), 'first message');

    await nats.jsm.consumers.delete(spec.stream, spec.durable);
    await sleep(500);
    await provisionJetStream(nats.jsm, { streams: [], consumers: [spec] });
    const b = await publish(subject, agent);
    await eventually(
      () => handled.includes(b.id),
      'a message after the consumer was re-created',
      20_000,
    );

    await nats.server.restart();
    await eventually(
      async () => {
        try {
          await nats.nc.flush();
          return true;
        } catch {
          return false;
        }
      },
      'reconnect',
      15_000,
    );
    const c = await publish(subject, agent);
    await eventually(() => handled.includes(c.id), 'a message after the restart', 30_000);
  }, 90_000);
});
