import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { connectNats, decodeCloudEvent, EventPublisher, RunEventStream } from '@aob/events';
import { startNatsServer, testRedisUrl, waitFor, type TestNatsServer } from '@aob/testing';
import { startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';

jest.setTimeout(30_000);

describe('gateway: POST /v1/runs/:runId/cancel', () => {
  let nats: TestNatsServer;
  let gw: GatewayHarness;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startHarness(nats.url);
    nc = await connectNats({ url: nats.url, name: 'gateway-cancel-test' });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await gw?.close();
    await nats?.stop();
  });

  const submit = async (input: unknown = { message: 'x' }) => {
    const res = await gw.request('/v1/runs', { method: 'POST', json: { agent: 'echo', input } });
    expect(res.status).toBe(202);
    return ((await res.json()) as { runId: string }).runId;
  };
  const cancel = (runId: string, json?: unknown) =>
    gw.request(`/v1/runs/${runId}/cancel`, { method: 'POST', ...(json ? { json } : {}) });
  const outbox = (like: string) =>
    withPg(gw.db.url, async (pg) => {
      const { rows } = await pg.query<{ event_id: string; subject: string; sent_at: Date | null }>(
        `SELECT event_id, subject, sent_at FROM gateway.outbox WHERE event_id LIKE $1 ORDER BY id`,
        [like],
      );
      return rows;
    });
  const controlMessages = async () => {
    const info = await jsm.streams.info('AGENT_CONTROL');
    const out = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
      const m = await jsm.streams.getMessage('AGENT_CONTROL', { seq });
      if (m)
        out.push({ subject: m.subject, ce: decodeCloudEvent({ headers: m.header, data: m.data }) });
    }
    return out;
  };

  it('publishes the cancel request for a run handed to the executors; repeating it is harmless', async () => {
    const runId = await submit();
    await waitFor(async () => (await outbox('%'))[0]?.sent_at != null, { what: 'execute sent' });

    const res = await cancel(runId, { reason: 'stop it' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ runId, status: 'queued' });
    await waitFor(async () => (await controlMessages()).length === 1, {
      what: 'the cancel request on AGENT_CONTROL',
    });
    const [msg] = await controlMessages();
    expect(msg!.subject).toBe('agent.control.cancel');
    expect(msg!.ce).toMatchObject({
      id: `${runId}.cancel`,
      type: 'aob.agent.cancel.v1',
      subject: runId,
      tenantid: TENANT,
      data: { runId, agent: 'echo', reason: 'stop it' },
    });

    // Twice: still 202, still one request.
    const again = await cancel(runId);
    expect(again.status).toBe(202);
    expect(await again.json()).toEqual({ runId, status: 'queued' });
    expect(await outbox(`${runId}.cancel%`)).toHaveLength(1);

    // The executor's cancelled event ends it; cancelling a cancelled run answers 202 again.
    await new EventPublisher(jetstream(nc), 'aob://agent-executor').publish(
      'agentCancelled',
      { runId, agent: 'echo', reason: 'stop it' },
      { id: `${runId}.cancelled`, tenantId: TENANT, ceSubject: runId },
    );
    await waitFor(
      async () =>
        ((await (await gw.request(`/v1/runs/${runId}`)).json()) as { status: string }).status ===
        'cancelled',
      { what: 'the projection of the cancelled event' },
    );
    const done = await cancel(runId);
    expect(done.status).toBe(202);
    expect(await done.json()).toEqual({ runId, status: 'cancelled' });
    await new Promise((r) => setTimeout(r, 200));
    expect(await controlMessages()).toHaveLength(1);
  });

  it('answers 409 for a finished run, 404 for an unknown or another tenant’s run, 400 for a bad body', async () => {
    const completed = await submit();
    const failed = await submit();
    await withPg(gw.db.url, async (pg) => {
      await pg.query(`UPDATE gateway.runs SET status = 'completed' WHERE run_id = $1`, [completed]);
      await pg.query(`UPDATE gateway.runs SET status = 'failed' WHERE run_id = $1`, [failed]);
      await pg.query(
        `INSERT INTO gateway.runs (run_id, tenant_id, agent, thread_id, status) VALUES ('theirs-1', 'tenant-b', 'echo', 'theirs-1', 'running')`,
      );
    });
    for (const [runId, status] of [
      [completed, 'completed'],
      [failed, 'failed'],
    ] as const) {
      const res = await cancel(runId);
      expect(res.status).toBe(409);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toMatchObject({ status: 409, code: 'Conflict', runStatus: status });
      expect(await outbox(`${runId}.cancel%`)).toHaveLength(0);
      expect(
        ((await (await gw.request(`/v1/runs/${runId}`)).json()) as { status: string }).status,
      ).toBe(status);
    }
    for (const runId of ['no-such-run', 'theirs-1']) {
      const res = await cancel(runId);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ status: 404, code: 'NotFound' });
    }
    expect(await outbox('theirs-1%')).toHaveLength(0);
    expect((await cancel(completed, { reason: '' })).status).toBe(400);
    expect((await cancel(completed, { why: 'x' })).status).toBe(400);
    expect((await cancel('bad%20id')).status).toBe(400);
  });

  it('ends a run whose execute event was never published right away (NATS down)', async () => {
    await nc.close();
    await nats.stop();
    const runId = await submit();
    // (The relay is trying to publish the execute event: the cancel waits for that attempt to
    // fail, up to the relay's 5 s publish timeout, so it never deletes a row being published.)
    const res = await cancel(runId, { reason: 'never mind' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ runId, status: 'cancelled' });
    expect((await cancel(runId)).status).toBe(202);

    const run = (await (await gw.request(`/v1/runs/${runId}`)).json()) as Record<string, unknown>;
    expect(run).toMatchObject({
      status: 'cancelled',
      error: { code: 'Cancelled', message: 'never mind', retryable: false },
    });
    // The execute event is gone; the cancel request and the cancelled event wait for NATS.
    const rows = await withPg(
      gw.db.url,
      async (pg) =>
        (
          await pg.query<{ event_id: string; subject: string; sent_at: Date | null }>(
            `SELECT o.event_id, o.subject, o.sent_at FROM gateway.outbox o WHERE o.event_id LIKE $1
              OR o.event_id = (SELECT event_id FROM gateway.runs WHERE run_id = $2) ORDER BY id`,
            [`${runId}.%`, runId],
          )
        ).rows,
    );
    expect(rows.map((r) => [r.event_id, r.subject, r.sent_at])).toEqual([
      [`${runId}.cancel`, 'agent.control.cancel', null],
      [`${runId}.cancelled`, 'agent.status.cancelled', null],
    ]);
    const redis = new Redis(testRedisUrl());
    try {
      const entries = await new RunEventStream(redis, { keyPrefix: gw.redisPrefix }).range(runId);
      expect(entries.map((e) => [e.event, e.data])).toEqual([
        ['status', { status: 'queued', attempt: 0 }],
        ['cancelled', { runId, reason: 'never mind' }],
      ]);
    } finally {
      redis.disconnect();
    }
  });
});
