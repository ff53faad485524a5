import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, EventPublisher, headersToRecord } from '@aob/events';
import { createDataSource, DeadLetterRepository, type DataSource } from '@aob/persistence';
import { startNatsServer, type TestNatsServer } from '@aob/testing';
import { startHarness, type GatewayHarness } from './gateway-harness';

/** `/v1/dlq` against a real Postgres and NATS; dead letters stored as the dlq-replayer stores them. */
describe('gateway /v1/dlq', () => {
  let nats: TestNatsServer;
  let h: GatewayHarness;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let ds: DataSource;
  let repo: DeadLetterRepository;
  const keys: Record<string, string> = {};
  const ids: Record<string, string> = {};

  /** Publishes an execute request (nobody consumes it here) and stores it as a dead letter. */
  async function deadLetter(name: string, tenantId: string | null, seqOffset = 0): Promise<string> {
    const publisher = new EventPublisher(jetstream(nc), 'aob://dlq-test');
    const { seq } = await publisher.publish(
      'agentExecute',
      { agent: 'echo', input: { message: name } },
      {
        id: `ev-${name}`,
        subject: 'agent.execute.echo',
        ...(tenantId === null ? {} : { tenantId }),
      },
    );
    const original = await jsm.streams.getMessage('AGENT_EXECUTION', { seq });
    const { id } = await repo.insert({
      tenantId,
      stream: 'AGENT_EXECUTION',
      consumer: 'agent-executor-workers',
      streamSeq: seq + seqOffset,
      subject: original!.subject,
      eventId: `ev-${name}`,
      type: 'aob.agent.execute.v1',
      code: 'Unavailable',
      reason: `gave up after 5 deliveries: ${name}`,
      deliveries: 5,
      status: 'parked',
      quarantineUntil: null,
      headers: headersToRecord(original!.header),
      data: original!.data,
    });
    return id;
  }

  const as = (who: string) => ({ key: keys[who]! });

  beforeAll(async () => {
    nats = await startNatsServer();
    // The bootstrap admin is an admin of tenant `*`: a platform admin.
    h = await startHarness(nats.url, { AOB_BOOTSTRAP_TENANT: '*' });
    nc = await connectNats({ url: nats.url, name: 'dlq-gateway-test' });
    jsm = await jetstreamManager(nc);
    ds = createDataSource({ url: h.db.url, poolSize: 2 });
    await ds.initialize();
    repo = new DeadLetterRepository(ds);
    for (const tenant of ['tenant-a', 'tenant-b']) {
      const res = await h.request('/v1/api-keys', {
        method: 'POST',
        json: { name: `${tenant} developer`, role: 'developer', tenantId: tenant },
      });
      expect(res.status).toBe(201);
      keys[tenant] = ((await res.json()) as { key: string }).key;
    }
    const viewer = await h.request('/v1/api-keys', {
      method: 'POST',
      json: { name: 'viewer', role: 'viewer', tenantId: 'tenant-a' },
    });
    keys.viewer = ((await viewer.json()) as { key: string }).key;
    ids.a1 = await deadLetter('a1', 'tenant-a');
    ids.a2 = await deadLetter('a2', 'tenant-a');
    ids.b1 = await deadLetter('b1', 'tenant-b');
    ids.none = await deadLetter('none', null);
  }, 30_000);

  afterAll(async () => {
    await ds?.destroy();
    await nc?.close();
    await h?.close();
    await nats?.stop();
  });

  it("lists the caller's tenant only, newest first, with cursor pagination and filters", async () => {
    const first = await h.request('/v1/dlq?limit=1', as('tenant-a'));
    expect(first.status).toBe(200);
    const page1 = (await first.json()) as { items: { id: string }[]; nextCursor?: string };
    expect(page1.items.map((i) => i.id)).toEqual([ids.a2]);
    const second = await h.request(
      `/v1/dlq?limit=1&cursor=${encodeURIComponent(page1.nextCursor!)}`,
      as('tenant-a'),
    );
    const page2 = (await second.json()) as { items: { id: string }[]; nextCursor?: string };
    expect(page2.items.map((i) => i.id)).toEqual([ids.a1]);
    expect(page2.nextCursor).toBeUndefined();

    const all = (await (await h.request('/v1/dlq')).json()) as { items: { id: string }[] };
    expect(all.items.map((i) => i.id).sort()).toEqual(Object.values(ids).sort());

    const filtered = await h.request(
      '/v1/dlq?status=replayed&subject=agent.execute.echo',
      as('tenant-a'),
    );
    expect(((await filtered.json()) as { items: unknown[] }).items).toEqual([]);
    expect((await h.request('/v1/dlq?status=bogus', as('tenant-a'))).status).toBe(400);
  });

  it('shows one entry in the contract shape; another tenant (or a tenantless one) answers 404', async () => {
    const res = await h.request(`/v1/dlq/${ids.a1}`, as('tenant-a'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      id: ids.a1,
      tenantId: 'tenant-a',
      subject: 'agent.execute.echo',
      eventId: 'ev-a1',
      type: 'aob.agent.execute.v1',
      reason: 'gave up after 5 deliveries: a1',
      code: 'Unavailable',
      deliveries: 5,
      replays: 0,
      status: 'parked',
      firstFailedAt: expect.any(String),
      lastFailedAt: expect.any(String),
    });
    expect((await h.request(`/v1/dlq/${ids.b1}`, as('tenant-a'))).status).toBe(404);
    expect((await h.request(`/v1/dlq/${ids.none}`, as('tenant-a'))).status).toBe(404);
    expect((await h.request(`/v1/dlq/not-a-uuid`, as('tenant-a'))).status).toBe(404);
    expect((await h.request(`/v1/dlq/${ids.none}`)).status).toBe(200);
    expect((await h.request(`/v1/dlq/${ids.a1}`, { key: keys.viewer! })).status).toBe(403);
    expect((await h.request(`/v1/dlq/${ids.a1}`, { key: null })).status).toBe(401);
  });

  it('replays: same CloudEvent and headers, fresh Nats-Msg-Id, ce-aobreplay n; counts replays', async () => {
    expect(
      (await h.request(`/v1/dlq/${ids.b1}/replay`, { ...as('tenant-a'), method: 'POST' })).status,
    ).toBe(404);
    for (const n of [1, 2]) {
      const res = await h.request(`/v1/dlq/${ids.a1}/replay`, {
        ...as('tenant-a'),
        method: 'POST',
      });
      expect(res.status).toBe(202);
      expect(await res.json()).toMatchObject({ id: ids.a1, status: 'replayed', replays: n });
      const m = await jsm.streams.getMessage('AGENT_EXECUTION', {
        last_by_subj: 'agent.execute.echo',
      });
      expect(m!.header.get('Nats-Msg-Id')).toBe(`replay-${ids.a1}-${n}`);
      expect(m!.header.get('ce-aobreplay')).toBe(String(n));
      expect(m!.header.get('ce-id')).toBe('ev-a1');
      expect(m!.header.get('ce-tenantid')).toBe('tenant-a');
      expect(JSON.parse(Buffer.from(m!.data).toString())).toEqual({
        agent: 'echo',
        input: { message: 'a1' },
      });
    }
  });

  it('discards (204); a discarded entry is not replayed', async () => {
    expect(
      (await h.request(`/v1/dlq/${ids.b1}`, { ...as('tenant-a'), method: 'DELETE' })).status,
    ).toBe(404);
    expect(
      (await h.request(`/v1/dlq/${ids.a2}`, { ...as('tenant-a'), method: 'DELETE' })).status,
    ).toBe(204);
    const got = (await (await h.request(`/v1/dlq/${ids.a2}`, as('tenant-a'))).json()) as {
      status: string;
    };
    expect(got.status).toBe('discarded');
    expect(
      (await h.request(`/v1/dlq/${ids.a2}/replay`, { ...as('tenant-a'), method: 'POST' })).status,
    ).toBe(409);
  });

  it('bulk-replays by filter within the tenant', async () => {
    const res = await h.request('/v1/dlq/replay', {
      ...as('tenant-b'),
      method: 'POST',
      json: { status: 'parked' },
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ replayed: 1 });
    const b1 = (await (await h.request(`/v1/dlq/${ids.b1}`, as('tenant-b'))).json()) as {
      replays: number;
    };
    expect(b1.replays).toBe(1);
    // tenant-a's discarded a2 and tenant-b's entries are out of reach of tenant-a's bulk replay
    const a = await h.request('/v1/dlq/replay', {
      ...as('tenant-a'),
      method: 'POST',
      json: { ids: [ids.a2, ids.b1] },
    });
    expect(await a.json()).toEqual({ replayed: 0 });
    expect(
      (await h.request('/v1/dlq/replay', { ...as('tenant-a'), method: 'POST', json: { nope: 1 } }))
        .status,
    ).toBe(400);
  });
});
