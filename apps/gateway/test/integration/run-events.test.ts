import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { connectNats, EventPublisher, RunEventStream } from '@aob/events';
import { startNatsServer, testRedisUrl, waitFor, type TestNatsServer } from '@aob/testing';
import { startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';
import { eventsOf, readSse } from './sse-client';

jest.setTimeout(60_000);

const KEEPALIVE_MS = 300;
const usage = { promptTokens: 1, completionTokens: 1, totalTokens: 2, costUsd: 0 };

describe('gateway: GET /v1/runs/:runId/events (SSE)', () => {
  let nats: TestNatsServer;
  let gw: GatewayHarness;
  let redis: Redis;
  let stream: RunEventStream;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startHarness(nats.url, { SSE_KEEPALIVE_MS: String(KEEPALIVE_MS) });
    redis = new Redis(testRedisUrl());
    stream = new RunEventStream(redis, { keyPrefix: gw.redisPrefix });
    nc = await connectNats({ url: nats.url, name: 'fake-executor' });
  });

  afterAll(async () => {
    const keys = await redis.keys(`${gw.redisPrefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await nc?.close();
    await gw?.close();
    await nats?.stop();
  });

  const submit = async () => {
    const res = await gw.request('/v1/runs', {
      method: 'POST',
      json: { agent: 'echo', input: { message: 'sse' } },
    });
    return ((await res.json()) as { runId: string }).runId;
  };
  const result = (runId: string) => ({
    runId,
    agent: 'echo',
    threadId: runId,
    output: { echo: 'sse' },
    usage,
    attempts: 1,
    durationMs: 3,
  });

  it('streams the backlog and live entries with ids, and ends after the terminal event', async () => {
    const runId = await submit();
    await stream.append(runId, 'status', { status: 'running', attempt: 1 });
    const res = await gw.request(`/v1/runs/${runId}/events`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const reading = readSse(res);
    await stream.append(runId, 'token', { text: 'he' });
    await stream.append(runId, 'token', { text: 'llo' });
    await stream.append(runId, 'step', { step: 1, output: 'x' });
    const completedId = await stream.append(runId, 'completed', result(runId));
    // anything after the terminal event is not sent: the response has ended
    await stream.append(runId, 'token', { text: 'late' });
    const events = eventsOf(await reading);
    expect(events.map((e) => e.event)).toEqual([
      'status',
      'status',
      'token',
      'token',
      'step',
      'completed',
    ]);
    expect(events[0]?.data).toEqual({ status: 'queued', attempt: 0 });
    expect(events[1]?.data).toEqual({ status: 'running', attempt: 1 });
    expect(events[2]?.data).toEqual({ text: 'he' });
    expect(events[5]).toMatchObject({ id: completedId, data: result(runId) });
    const all = await stream.range(runId);
    expect(events.map((e) => e.id)).toEqual(all.slice(0, 6).map((e) => e.id));
  });

  it('goes on past the failed entry of a run a dead-letter replay reopened, and ends at a plain failure', async () => {
    const failure = (runId: string, attempts: number) => ({
      runId,
      agent: 'echo',
      threadId: runId,
      error: { code: 'Unavailable', message: 'model gateway down', retryable: true },
      attempts,
      deadLettered: true,
    });
    // reopened: the replay's entries follow the first life's `failed`
    const reopened = await submit();
    await stream.append(reopened, 'status', { status: 'running', attempt: 1 });
    await stream.append(reopened, 'failed', failure(reopened, 5));
    await stream.append(reopened, 'status', { status: 'running', attempt: 6 });
    const reading = readSse(await gw.request(`/v1/runs/${reopened}/events`));
    await stream.append(reopened, 'step', { step: 1, output: 'x' });
    await stream.append(reopened, 'completed', { ...result(reopened), attempts: 6 });
    expect(eventsOf(await reading).map((e) => e.event)).toEqual([
      'status',
      'status',
      'failed',
      'status',
      'step',
      'completed',
    ]);

    // a failure nothing follows ends the stream, as every terminal event does
    const failed = await submit();
    await stream.append(failed, 'status', { status: 'running', attempt: 1 });
    const ending = readSse(await gw.request(`/v1/runs/${failed}/events`));
    await stream.append(failed, 'failed', failure(failed, 1));
    expect(eventsOf(await ending).map((e) => e.event)).toEqual(['status', 'status', 'failed']);
  });

  it('resumes after Last-Event-ID with exactly the entries after it (header or query)', async () => {
    const runId = await submit();
    const ids = [
      await stream.append(runId, 'status', { status: 'running', attempt: 1 }),
      await stream.append(runId, 'token', { text: 'a' }),
      await stream.append(runId, 'token', { text: 'b' }),
      await stream.append(runId, 'completed', result(runId)),
    ];
    const all = await stream.range(runId);
    const resumeAt = ids[1]!;
    const expected = all.slice(all.findIndex((e) => e.id === resumeAt) + 1).map((e) => e.id);
    const viaHeader = eventsOf(
      await readSse(
        await gw.request(`/v1/runs/${runId}/events`, { headers: { 'last-event-id': resumeAt } }),
      ),
    );
    expect(viaHeader.map((e) => e.id)).toEqual(expected);
    expect(viaHeader.map((e) => e.event)).toEqual(['token', 'completed']);
    const viaQuery = eventsOf(
      await readSse(await gw.request(`/v1/runs/${runId}/events?lastEventId=${resumeAt}`)),
    );
    expect(viaQuery.map((e) => e.id)).toEqual(expected);
    expect(
      (await gw.request(`/v1/runs/${runId}/events`, { headers: { 'last-event-id': 'nonsense' } }))
        .status,
    ).toBe(400);
  });

  it('sends keep-alive comments while the run is quiet', async () => {
    const runId = await submit();
    const items = await readSse(
      await gw.request(`/v1/runs/${runId}/events`),
      (seen) => seen.filter((i) => i.kind === 'comment').length >= 2,
    );
    expect(
      items.filter((i) => i.kind === 'comment' && i.text === 'keep-alive').length,
    ).toBeGreaterThanOrEqual(2);
  });

  it('stops reading Redis when the client goes away', async () => {
    const runId = await submit();
    const clientsBefore = await redisClientCount();
    const controller = new AbortController();
    const res = await gw.request(`/v1/runs/${runId}/events`, { signal: controller.signal });
    expect(res.status).toBe(200);
    await waitFor(async () => (await redisClientCount()) > clientsBefore, {
      what: 'follow connection opened',
    });
    controller.abort();
    await waitFor(async () => (await redisClientCount()) <= clientsBefore, {
      what: 'follow connection closed',
      timeoutMs: 5_000,
    });
    await waitFor(
      async () =>
        /^aob_gateway_sse_streams 0$/m.test(
          await (await gw.request('/metrics', { key: null })).text(),
        ),
      {
        what: 'no open SSE stream',
      },
    );
  });

  it('synthesizes the terminal event from Postgres when the Redis stream is gone', async () => {
    const runId = await submit();
    await new EventPublisher(jetstream(nc), 'aob://agent-executor').publish(
      'agentCompleted',
      result(runId),
      {
        id: `${runId}.completed`,
        tenantId: TENANT,
        ceSubject: runId,
      },
    );
    await waitFor(
      async () =>
        ((await (await gw.request(`/v1/runs/${runId}`)).json()) as { status: string }).status ===
        'completed',
      {
        what: 'completed in Postgres',
      },
    );
    await redis.del(stream.key(runId));
    const events = eventsOf(await readSse(await gw.request(`/v1/runs/${runId}/events`)));
    expect(events).toEqual([{ kind: 'event', event: 'completed', data: result(runId) }]);
  });

  it('ends a live stream whose run finished in Postgres without a terminal entry in Redis', async () => {
    const runId = await submit();
    const res = await gw.request(`/v1/runs/${runId}/events`);
    const reading = readSse(res);
    await withPg(gw.db.url, (pg) =>
      pg.query(
        `UPDATE gateway.runs SET status = 'failed', attempts = 2,
           error = '{"code":"AgentFailed","message":"boom","retryable":false,"deadLettered":true}' WHERE run_id = $1`,
        [runId],
      ),
    );
    const events = eventsOf(await reading);
    expect(events.map((e) => e.event)).toEqual(['status', 'failed']);
    expect(events[1]?.data).toMatchObject({
      runId,
      error: { code: 'AgentFailed' },
      attempts: 2,
      deadLettered: true,
    });
  });

  it('answers 404 for unknown runs and 400 for bad ids', async () => {
    expect((await gw.request('/v1/runs/nope/events')).status).toBe(404);
    expect((await gw.request('/v1/runs/-leading-dash/events')).status).toBe(400);
  });

  async function redisClientCount(): Promise<number> {
    const list = (await redis.client('LIST')) as string;
    return list.split('\n').filter((l) => l.includes('name=aob-gateway') && l.includes('cmd=xread'))
      .length;
  }
});
