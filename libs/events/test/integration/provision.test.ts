import { nanos } from '@nats-io/nats-core';
import {
  CONSUMERS,
  provisionJetStream,
  ProvisionConflictError,
  STREAMS,
  type ConsumerSpec,
  type StreamSpec,
} from '@aob/events';
import { natsFixture, type NatsFixture } from './support';

// Private nats-server per suite, and close() waits for open pull requests (up to 5 s).
jest.setTimeout(60_000);

describe('provisionJetStream (private nats-server 2.9)', () => {
  let nats: NatsFixture;
  beforeAll(async () => {
    nats = await natsFixture();
  });
  afterAll(async () => {
    await nats.close();
  });

  it('creates every catalog stream and consumer with the contract settings, then reports unchanged', async () => {
    const first = await provisionJetStream(nats.jsm);
    // natsFixture already made the streams; consumers are new.
    expect(first.streams.map((s) => [s.name, s.action])).toEqual(
      Object.keys(STREAMS).map((n) => [n, 'unchanged']),
    );
    expect(first.consumers.every((c) => c.action === 'created')).toBe(true);

    const exec = await nats.jsm.streams.info('AGENT_EXECUTION');
    expect(exec.config).toMatchObject({
      subjects: ['agent.execute.>'],
      retention: 'limits',
      storage: 'file',
      max_age: nanos(24 * 3_600_000),
      duplicate_window: nanos(120_000),
    });
    const workers = await nats.jsm.consumers.info('AGENT_EXECUTION', 'agent-executor-workers');
    expect(workers.config).toMatchObject({
      durable_name: 'agent-executor-workers',
      ack_policy: 'explicit',
      deliver_policy: 'all',
      ack_wait: nanos(CONSUMERS.agentExecutorWorkers.ackWaitMs),
      max_deliver: CONSUMERS.agentExecutorWorkers.maxDeliver,
      max_ack_pending: CONSUMERS.agentExecutorWorkers.maxAckPending,
    });
    expect(workers.config.deliver_subject).toBeUndefined();

    const again = await provisionJetStream(nats.jsm);
    expect([...again.streams, ...again.consumers].every((r) => r.action === 'unchanged')).toBe(
      true,
    );
  });

  it('updates changed settings in place without losing stored messages or consumer state', async () => {
    const stream: StreamSpec = {
      name: 'PROVTEST',
      subjects: ['prov.a'],
      maxAgeMs: 60_000,
      duplicateWindowMs: 10_000,
      storage: 'file',
    };
    const consumer = {
      stream: 'PROVTEST',
      durable: 'prov-consumer',
      ackWaitMs: 5_000,
      maxDeliver: 3,
      maxAckPending: 10,
      retryBaseMs: 1,
      retryMaxMs: 1,
    } as unknown as ConsumerSpec;
    expect(
      await provisionJetStream(nats.jsm, { streams: [stream], consumers: [consumer] }),
    ).toEqual({
      streams: [{ name: 'PROVTEST', action: 'created' }],
      consumers: [{ stream: 'PROVTEST', durable: 'prov-consumer', action: 'created' }],
    });
    await nats.js.publish('prov.a', 'one');
    await nats.js.publish('prov.a', 'two');
    // Consume and ack one message so the consumer has state worth keeping.
    const c = await nats.js.consumers.get('PROVTEST', 'prov-consumer');
    const m = await c.next({ expires: 2_000 });
    expect(await m!.ackAck()).toBe(true);

    const changedStream = {
      ...stream,
      subjects: ['prov.a', 'prov.b'],
      maxAgeMs: 120_000,
      duplicateWindowMs: 20_000,
    };
    const changedConsumer = {
      ...consumer,
      ackWaitMs: 7_000,
      maxDeliver: 4,
      maxAckPending: 20,
      filterSubject: 'prov.a',
    };
    const report = await provisionJetStream(nats.jsm, {
      streams: [changedStream],
      consumers: [changedConsumer],
    });
    expect(report.streams).toEqual([
      { name: 'PROVTEST', action: 'updated', changed: ['subjects', 'max_age', 'duplicate_window'] },
    ]);
    expect(report.consumers).toEqual([
      {
        stream: 'PROVTEST',
        durable: 'prov-consumer',
        action: 'updated',
        changed: ['ack_wait', 'max_deliver', 'max_ack_pending', 'filter_subject'],
      },
    ]);

    const info = await nats.jsm.streams.info('PROVTEST');
    expect(info.config).toMatchObject({
      subjects: ['prov.a', 'prov.b'],
      max_age: nanos(120_000),
      duplicate_window: nanos(20_000),
    });
    expect(info.state.messages).toBe(2);
    const ci = await nats.jsm.consumers.info('PROVTEST', 'prov-consumer');
    expect(ci.config).toMatchObject({
      ack_wait: nanos(7_000),
      max_deliver: 4,
      max_ack_pending: 20,
      filter_subject: 'prov.a',
    });
    expect(ci.ack_floor.stream_seq).toBe(1);
    expect(ci.num_pending).toBe(1);

    const third = await provisionJetStream(nats.jsm, {
      streams: [changedStream],
      consumers: [changedConsumer],
    });
    expect([...third.streams, ...third.consumers].every((r) => r.action === 'unchanged')).toBe(
      true,
    );
  });

  it('refuses, with a clear error, a change JetStream cannot make in place', async () => {
    const stream: StreamSpec = {
      name: 'PROVMEM',
      subjects: ['provmem.>'],
      maxAgeMs: 60_000,
      duplicateWindowMs: 10_000,
      storage: 'memory',
    };
    await provisionJetStream(nats.jsm, { streams: [stream], consumers: [] });
    const attempt = provisionJetStream(nats.jsm, {
      streams: [{ ...stream, storage: 'file' }],
      consumers: [],
    });
    await expect(attempt).rejects.toThrow(ProvisionConflictError);
    await expect(
      provisionJetStream(nats.jsm, { streams: [{ ...stream, storage: 'file' }], consumers: [] }),
    ).rejects.toThrow(/PROVMEM has storage "memory" but the catalog wants "file"/);
    expect((await nats.jsm.streams.info('PROVMEM')).config.storage).toBe('memory');
  });
});
