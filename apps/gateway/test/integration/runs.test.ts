import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, decodeCloudEvent, STREAMS } from '@aob/events';
import { startNatsServer, waitFor, type TestNatsServer } from '@aob/testing';
import { startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';
import { CONTRACT_OPERATIONS } from '../contract-operations';
import committedOpenApi from '../../openapi.json';
import { OutboxRelay } from '../../src/outbox/outbox-relay';
import { OutboxRepository } from '../../src/outbox/outbox.repository';

jest.setTimeout(60_000);

describe('gateway: submitting runs', () => {
  let nats: TestNatsServer;
  let gw: GatewayHarness;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startHarness(nats.url);
    nc = await connectNats({ url: nats.url, name: 'gateway-test' });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await nc?.close();
    await gw?.close();
    await nats?.stop();
  });

  const outboxRows = (runId?: string) =>
    withPg(gw.db.url, async (pg) => {
      const { rows } = await pg.query<{
        event_id: string;
        subject: string;
        sent_at: Date | null;
        headers: Record<string, string>;
      }>(
        `SELECT o.event_id, o.subject, o.sent_at, o.headers FROM gateway.outbox o
           LEFT JOIN gateway.runs r ON r.event_id = o.event_id
          WHERE $1::text IS NULL OR r.run_id = $1 ORDER BY o.id`,
        [runId ?? null],
      );
      return rows;
    });

  /** The stored execute message of a run (looked up by its CloudEvent id). */
  async function executeMessageOf(runId: string) {
    const [row] = await outboxRows(runId);
    if (!row) throw new Error(`no outbox row for ${runId}`);
    await waitFor(async () => (await outboxRows(runId))[0]?.sent_at != null, {
      what: 'outbox row sent',
    });
    const info = await jsm.streams.info(STREAMS.AGENT_EXECUTION.name);
    for (let seq = info.state.last_seq; seq >= info.state.first_seq && seq > 0; seq--) {
      const m = await jsm.streams.getMessage(STREAMS.AGENT_EXECUTION.name, { seq });
      if (m?.header.get('Nats-Msg-Id') === row.event_id) return { msg: m, eventId: row.event_id };
    }
    throw new Error(`execute message of ${runId} not in AGENT_EXECUTION`);
  }

  describe('auth and request hygiene', () => {
    it('answers 401 problem+json without credentials and with a wrong key', async () => {
      for (const key of [null, 'wrong-key-wrong-key-wrong']) {
        const res = await gw.request('/v1/runs', {
          method: 'POST',
          key,
          json: { agent: 'echo', input: {} },
        });
        expect(res.status).toBe(401);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await res.json()).toMatchObject({ status: 401, code: 'Unauthorized' });
      }
      expect((await gw.request('/v1/runs', { key: null })).status).toBe(401);
    });

    it('sets security headers and hides x-powered-by', async () => {
      const res = await gw.request('/v1/agents');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-powered-by')).toBeNull();
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('strict-transport-security')).toBeTruthy();
    });

    it('answers 413 for a body over 1 MiB and 400 for malformed JSON', async () => {
      const big = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'echo', input: { message: 'x'.repeat(1024 * 1024 + 10) } },
      });
      expect(big.status).toBe(413);
      expect(await big.json()).toMatchObject({ status: 413, code: 'PayloadTooLarge' });

      const bad = await gw.request('/v1/runs', {
        method: 'POST',
        body: '{"agent":',
        headers: { 'content-type': 'application/json' },
      });
      expect(bad.status).toBe(400);
      expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    });

    it('answers unknown routes with a 404 problem', async () => {
      const res = await gw.request('/v1/nothing-here');
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    });

    it('serves readiness with nats, postgres and redis up', async () => {
      const res = await gw.request('/readyz', { key: null });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { checks: Record<string, { status: string }> };
      expect(Object.keys(body.checks).sort()).toEqual(['nats', 'postgres', 'redis']);
    });
  });

  describe('POST /v1/runs', () => {
    it('answers 400 with the zod issues for an invalid body', async () => {
      const res = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'Not An Agent', runId: '../etc', options: { tier: 'huge' } },
      });
      expect(res.status).toBe(400);
      const p = (await res.json()) as { code: string; errors: { path: string; message: string }[] };
      expect(p.code).toBe('InvalidRequest');
      expect(p.errors.map((e) => e.path).sort()).toEqual([
        'agent',
        'input',
        'options.tier',
        'runId',
      ]);
    });

    it('answers 400 unknown-agent for an agent no executor registered', async () => {
      const res = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'nobody', input: {} },
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        code: 'UnknownAgent',
        type: expect.stringMatching(/\/unknown-agent$/),
      });
    });

    it("answers 400 when the input does not match the agent's input schema", async () => {
      const res = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'echo', input: { delayMs: 'soon' } },
      });
      expect(res.status).toBe(400);
      const p = (await res.json()) as { errors: { path: string }[] };
      expect(p.errors).toEqual([expect.objectContaining({ path: 'input.delayMs' })]);
      const chat = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'chat', input: { messages: [] } },
      });
      expect(chat.status).toBe(400);
      expect(
        (
          await gw.request('/v1/runs', {
            method: 'POST',
            json: { agent: 'chat', input: { prompt: 'hi' } },
          })
        ).status,
      ).toBe(202);
    });

    it('answers 202, stores the run and an outbox row, and publishes the binary CloudEvent', async () => {
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const res = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'echo', input: { message: 'hello' }, options: { tier: 'fast' } },
        headers: { traceparent },
      });
      expect(res.status).toBe(202);
      const body = (await res.json()) as { runId: string; status: string };
      expect(body.status).toBe('queued');
      expect(res.headers.get('location')).toBe(`/v1/runs/${body.runId}`);

      const run = await (await gw.request(`/v1/runs/${body.runId}`)).json();
      expect(run).toMatchObject({
        runId: body.runId,
        tenantId: TENANT,
        agent: 'echo',
        status: 'queued',
        threadId: body.runId,
        input: { message: 'hello' },
        attempts: 0,
      });

      const { msg, eventId } = await executeMessageOf(body.runId);
      // the run id defaults to the CloudEvent id
      expect(eventId).toBe(body.runId);
      expect(msg.subject).toBe('agent.execute.echo');
      expect(msg.header.get('ce-specversion')).toBe('1.0');
      expect(msg.header.get('ce-type')).toBe('aob.agent.execute.v1');
      expect(msg.header.get('ce-source')).toBe('aob://gateway');
      expect(msg.header.get('ce-tenantid')).toBe(TENANT);
      expect(msg.header.get('ce-traceparent')).toBe(traceparent);
      expect(msg.header.get('ce-subject')).toBe(body.runId);
      // binary mode: data alone in the payload
      expect(JSON.parse(new TextDecoder().decode(msg.data))).toEqual({
        agent: 'echo',
        input: { message: 'hello' },
        options: { tier: 'fast' },
        runId: body.runId,
        threadId: body.runId,
      });
      const ce = decodeCloudEvent({ headers: msg.header, data: msg.data });
      expect(ce.id).toBe(eventId);
    });

    it('keeps a given runId and threadId; a second submission of that runId is a 409', async () => {
      const json = { agent: 'echo', input: {}, runId: 'my-run-1', threadId: 'thread-9' };
      const first = await gw.request('/v1/runs', { method: 'POST', json });
      expect(first.status).toBe(202);
      expect(await first.json()).toEqual({ runId: 'my-run-1', status: 'queued' });
      const { msg, eventId } = await executeMessageOf('my-run-1');
      expect(eventId).not.toBe('my-run-1');
      expect(JSON.parse(new TextDecoder().decode(msg.data))).toMatchObject({
        runId: 'my-run-1',
        threadId: 'thread-9',
      });

      const again = await gw.request('/v1/runs', { method: 'POST', json });
      expect(again.status).toBe(409);
      expect(await again.json()).toMatchObject({ code: 'Conflict' });
    });

    it('replays the original answer for a repeated Idempotency-Key and answers 422 for another body', async () => {
      const headers = { 'idempotency-key': 'order-42' };
      const json = { agent: 'echo', input: { message: 'once', delayMs: 1 } };
      const first = await gw.request('/v1/runs', { method: 'POST', json, headers });
      expect(first.status).toBe(202);
      const { runId } = (await first.json()) as { runId: string };
      // same body with keys in another order is the same request
      const second = await gw.request('/v1/runs', {
        method: 'POST',
        json: { input: { delayMs: 1, message: 'once' }, agent: 'echo' },
        headers,
      });
      expect(second.status).toBe(202);
      expect(await second.json()).toEqual({ runId, status: 'queued' });
      expect(second.headers.get('location')).toBe(`/v1/runs/${runId}`);
      expect(await outboxRows(runId)).toHaveLength(1);

      const other = await gw.request('/v1/runs', {
        method: 'POST',
        json: { agent: 'echo', input: { message: 'twice' } },
        headers,
      });
      expect(other.status).toBe(422);
      expect(other.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await other.json()).toMatchObject({
        status: 422,
        code: 'IdempotencyKeyReused',
        runId,
      });

      const badKey = await gw.request('/v1/runs', {
        method: 'POST',
        json,
        headers: { 'idempotency-key': 'k'.repeat(256) },
      });
      expect(badKey.status).toBe(400);
    });

    it('answers concurrent submissions with one Idempotency-Key with one run', async () => {
      const headers = { 'idempotency-key': 'burst-1' };
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          gw.request('/v1/runs', {
            method: 'POST',
            json: { agent: 'echo', input: { n: 1 } },
            headers,
          }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(202));
      const ids = new Set(
        await Promise.all(answers.map(async (a) => ((await a.json()) as { runId: string }).runId)),
      );
      expect(ids.size).toBe(1);
      expect(await outboxRows([...ids][0])).toHaveLength(1);
    });
  });

  it('prunes sent outbox rows older than the retention, and never unsent ones', async () => {
    const relay = gw.app.get(OutboxRelay);
    await relay.idle();
    const before = await outboxRows();
    expect(before.length).toBeGreaterThan(1);
    await withPg(gw.db.url, async (pg) => {
      await pg.query(
        `UPDATE gateway.outbox SET sent_at = now() - interval '25 hours' WHERE event_id = $1`,
        [before[0]!.event_id],
      );
      await pg.query(
        `UPDATE gateway.outbox SET sent_at = NULL, created_at = now() - interval '30 hours' WHERE event_id = $1`,
        [before[1]!.event_id],
      );
    });
    expect(await gw.app.get(OutboxRepository).pruneSent(gw.config.OUTBOX_RETENTION_HOURS)).toBe(1);
    const after = (await outboxRows()).map((r) => r.event_id);
    expect(after).not.toContain(before[0]!.event_id);
    expect(after).toContain(before[1]!.event_id);
  });

  describe('GET routes', () => {
    it('validates run ids before any query and answers 404 for unknown runs', async () => {
      expect((await gw.request('/v1/runs/bad%20id')).status).toBe(400);
      const missing = await gw.request('/v1/runs/no-such-run');
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: 'NotFound' });
    });

    it('lists the registered agents with their input schemas', async () => {
      const res = await gw.request('/v1/agents');
      const body = (await res.json()) as {
        items: { name: string; inputSchema: { type?: string } }[];
      };
      expect(body.items.map((a) => a.name)).toEqual(['chat', 'echo']);
      expect(body.items[1]).toMatchObject({
        name: 'echo',
        version: '1',
        description: expect.any(String),
      });
      expect(body.items[1]?.inputSchema.type).toBe('object');
    });

    it('serves /openapi.json without credentials, equal to the committed document', async () => {
      const res = await gw.request('/openapi.json', { key: null });
      expect(res.status).toBe(200);
      const doc = (await res.json()) as {
        openapi: string;
        paths: Record<string, Record<string, unknown>>;
      };
      expect(doc).toEqual(committedOpenApi);
      expect(doc.openapi).toBe('3.1.0');
      const ops = Object.entries(doc.paths).flatMap(([p, methods]) =>
        Object.keys(methods).map((m) => `${m} ${p}`),
      );
      expect(ops.sort()).toEqual([...CONTRACT_OPERATIONS].sort());
    });
  });
});
