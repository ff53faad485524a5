import { randomUUID } from 'node:crypto';
import { waitFor } from '@aob/testing';
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { ExecutorFixture, SERVICE_KEY } from '../support/executor-fixture';
import { FakeModelGateway } from '../support/fake-model-gateway';

jest.setTimeout(60_000);

const COMPLETED = 'aob.agent.completed.v1';
const FAILED = 'aob.agent.failed.v1';
const STARTED = 'aob.agent.started.v1';
const STEP = 'aob.agent.step.v1';

describe('agent-executor (private nats-server, fresh database, local Redis)', () => {
  let f: ExecutorFixture;
  let model: FakeModelGateway;
  let app: INestApplication;

  beforeAll(async () => {
    model = new FakeModelGateway();
    await model.start();
    f = await ExecutorFixture.create();
    app = await f.startApp({ MODEL_GATEWAY_URL: model.url });
  });

  afterAll(async () => {
    await app?.close();
    await f?.close();
    await model?.stop();
  });

  it('is ready once NATS, Postgres, Redis and the consumer are up', async () => {
    const { port } = app.getHttpServer().address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await res.json()) as { checks: Record<string, { status: string }> };
    expect(res.status).toBe(200);
    expect(Object.keys(body.checks).sort()).toEqual(['consumer', 'nats', 'postgres', 'redis']);
  });

  it('registers the built-in agents with their JSON Schemas in executor.agents', async () => {
    const { rows } = await f.pg.query(
      'SELECT name, input_schema FROM executor.agents ORDER BY name',
    );
    expect(rows.map((r) => r.name)).toEqual(['chat', 'echo', 'pipeline']);
    const echo = rows.find((r) => r.name === 'echo');
    expect(echo.input_schema).toMatchObject({
      type: 'object',
      properties: { delayMs: { type: 'integer' } },
    });
  });

  it.each(['binary', 'structured'] as const)('completes a %s-mode echo request', async (mode) => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const runId = await f.publishExecute(
      { agent: 'echo', input: { message: `hello ${mode}` } },
      { mode, traceparent },
    );
    const done = await f.terminalEvent(runId);
    expect(done).toMatchObject({
      id: `${runId}.completed`,
      type: COMPLETED,
      subject: runId,
      tenantid: 'tenant-a',
      traceparent,
      data: {
        runId,
        agent: 'echo',
        threadId: runId,
        output: { echo: `hello ${mode}` },
        usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 },
        attempts: 1,
      },
    });
    const started = (await f.statusEvents(runId)).filter((e) => e.type === STARTED);
    expect(started.map((e) => e.id)).toEqual([`${runId}.started.1`]);
    expect(await f.runRow(runId)).toMatchObject({
      tenant_id: 'tenant-a',
      agent: 'echo',
      status: 'completed',
      attempts: 1,
      result_event_id: `${runId}.completed`,
      result_type: COMPLETED,
      result: done.data,
      lease_owner: null,
    });
    const entries = await f.redisEntries(runId);
    expect(entries.map((e) => e.event)).toEqual(['status', 'step', 'completed']);
    expect(entries[0]?.data).toEqual({ status: 'running', attempt: 1 });
    expect(entries[2]?.data).toEqual(done.data);
    expect(await f.redis.ttl(f.runStream.key(runId))).toBeGreaterThanOrEqual(86_000);
  });

  it('runs an event id published three times (three msg ids) once', async () => {
    const id = randomUUID();
    const data = { agent: 'echo', input: { message: 'once', delayMs: 300 } };
    for (let i = 0; i < 3; i++) await f.publishExecute(data, { id, msgId: `${id}-copy-${i}` });
    await f.terminalEvent(id);
    // The two copies must settle (they wait for the first, then find it completed).
    await waitFor(() => f.consumerIdle(), { timeoutMs: 20_000, what: 'the copies to settle' });
    const events = await f.statusEvents(id);
    expect(events.filter((e) => e.type === STARTED)).toHaveLength(1);
    expect(events.filter((e) => e.type === STEP)).toHaveLength(1);
    expect(events.filter((e) => e.type === COMPLETED)).toHaveLength(1);
    expect((await f.checkpoints(id)).length).toBe(1);
    // Status event ids repeat per attempt (JetStream would drop a second started.1): the run
    // stream shows how often the run really started.
    const entries = await f.redisEntries(id);
    expect(entries.filter((e) => e.event === 'status').map((e) => e.data)).toEqual([
      { status: 'running', attempt: 1 },
    ]);
    expect(entries.filter((e) => e.event === 'completed')).toHaveLength(1);
  });

  it('calls the model once for a chat request published three times', async () => {
    const runId = `chat-${randomUUID()}`;
    const original = model.reply;
    model.reply = (call) => ({ ...original(call), delayMs: 300 });
    try {
      const data = { agent: 'chat', runId, input: { prompt: 'just once please' } };
      const id = randomUUID();
      for (let i = 0; i < 3; i++) await f.publishExecute(data, { id, msgId: `${id}-${i}` });
      await f.terminalEvent(runId);
      await waitFor(() => f.consumerIdle(), { timeoutMs: 20_000, what: 'the copies to settle' });
    } finally {
      model.reply = original;
    }
    expect(model.calls.filter((c) => c.headers['x-aob-run-id'] === runId)).toHaveLength(1);
  });

  it('streams chat tokens to Redis and calls the model gateway as the service principal', async () => {
    const runId = `chat-${randomUUID()}`;
    await f.publishExecute({
      agent: 'chat',
      runId,
      input: { prompt: 'what is a checkpoint?', system: 'be short' },
    });
    const done = await f.terminalEvent(runId);
    expect(done.type).toBe(COMPLETED);
    const output = done.data.output as { content: string; model: string };
    expect(output).toEqual({ content: 'You said: what is a checkpoint?', model: 'sim-small' });
    expect(done.data.usage).toEqual({
      promptTokens: 6,
      completionTokens: 6,
      totalTokens: 12,
      costUsd: 0.00042,
    });

    const tokens = (await f.redisEntries(runId))
      .filter((e) => e.event === 'token')
      .map((e) => (e.data as { text: string }).text);
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.join('')).toBe(output.content);

    const call = model.calls.find((c) => c.headers['x-aob-run-id'] === runId);
    expect(call?.headers).toMatchObject({
      authorization: `Bearer ${SERVICE_KEY}`,
      'x-aob-tenant-id': 'tenant-a',
      'x-aob-agent': 'chat',
    });
    expect(call?.body).toMatchObject({
      model: 'tier:balanced',
      stream: true,
      stream_options: { include_usage: true },
      messages: [
        { role: 'system', content: 'be short' },
        { role: 'user', content: 'what is a checkpoint?' },
      ],
    });
  });

  it('answers a republished completed run with the same completed event, without a second model call', async () => {
    const runId = `chat-${randomUUID()}`;
    const data = {
      agent: 'chat',
      runId,
      input: { prompt: 'only once' },
      options: { model: 'local-fast', maxTokens: 50 },
    };
    const eventId = await f.publishExecute(data);
    const first = await f.terminalEvent(runId);
    const callsBefore = model.calls.filter((c) => c.headers['x-aob-run-id'] === runId);
    expect(callsBefore).toHaveLength(1);
    expect(callsBefore[0]?.body).toMatchObject({ model: 'local-fast', max_tokens: 50 });

    // Core subscribers see a publish even when JetStream drops it as a duplicate (same Nats-Msg-Id).
    const sub = f.nc.subscribe('agent.status.completed');
    const seen: { id: string | undefined; data: unknown }[] = [];
    void (async () => {
      for await (const m of sub) seen.push({ id: m.headers?.get('ce-id'), data: m.json() });
    })();
    await f.nc.flush();
    await f.publishExecute(data, { id: eventId, msgId: `${eventId}-again` });
    await waitFor(() => seen.length > 0, { timeoutMs: 10_000, what: 'the completed event again' });
    sub.unsubscribe();

    expect(seen[0]).toEqual({ id: `${runId}.completed`, data: first.data });
    expect(model.calls.filter((c) => c.headers['x-aob-run-id'] === runId)).toHaveLength(1);
    expect((await f.statusEvents(runId)).filter((e) => e.type === STARTED)).toHaveLength(1);
  });

  it('continues a chat thread with the conversation of the earlier run', async () => {
    const first = `chat-${randomUUID()}`;
    await f.publishExecute({ agent: 'chat', runId: first, input: { prompt: 'my name is Ada' } });
    await f.terminalEvent(first);
    const second = `chat-${randomUUID()}`;
    await f.publishExecute({
      agent: 'chat',
      runId: second,
      threadId: first,
      input: { prompt: 'what is my name?' },
    });
    const done = await f.terminalEvent(second);
    expect(done.data.threadId).toBe(first);
    const call = model.calls.find((c) => c.headers['x-aob-run-id'] === second);
    expect(call?.body.messages).toEqual([
      { role: 'user', content: 'my name is Ada' },
      { role: 'assistant', content: 'You said: my name is Ada' },
      { role: 'user', content: 'what is my name?' },
    ]);
  });

  it('checkpoints every step of a 3-step echo', async () => {
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'steps', steps: 3, delayMs: 20 },
    });
    expect((await f.terminalEvent(runId)).type).toBe(COMPLETED);
    const checkpoints = await f.checkpoints(runId);
    expect(checkpoints.map((c) => [c.step, c.step_id])).toEqual([
      [1, 'step-1'],
      [2, 'step-2'],
      [3, 'step-3'],
    ]);
    const steps = (await f.statusEvents(runId)).filter((e) => e.type === STEP);
    expect(steps.map((e) => [e.id, e.data.step, e.data.id])).toEqual([
      [`${runId}.step.1`, 1, 'step-1'],
      [`${runId}.step.2`, 2, 'step-2'],
      [`${runId}.step.3`, 3, 'step-3'],
    ]);
  });

  it('runs a pipeline of llm and tool steps, each checkpointed, with usage summed', async () => {
    const runId = await f.publishExecute({
      agent: 'pipeline',
      input: {
        steps: [
          { id: 'draft', kind: 'llm', prompt: 'write one line' },
          { id: 'shout', kind: 'tool', tool: 'uppercase', args: { text: '{{steps.draft}}' } },
          { id: 'review', kind: 'llm', prompt: 'review: {{steps.shout}}' },
        ],
      },
    });
    const done = await f.terminalEvent(runId);
    expect(done.data.output).toEqual({
      steps: {
        draft: 'You said: write one line',
        shout: 'YOU SAID: WRITE ONE LINE',
        review: 'You said: review: YOU SAID: WRITE ONE LINE',
      },
      last: 'You said: review: YOU SAID: WRITE ONE LINE',
    });
    expect((done.data.usage as { costUsd: number }).costUsd).toBeCloseTo(0.00084, 9);
    expect((await f.checkpoints(runId)).map((c) => c.step_id)).toEqual([
      'draft',
      'shout',
      'review',
    ]);
  });

  it('retries a transient failure and completes on delivery 3 with attempts 3', async () => {
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'flaky', fail: 'transient', failTimes: 2 },
    });
    const done = await f.terminalEvent(runId);
    expect(done).toMatchObject({
      type: COMPLETED,
      data: { attempts: 3, output: { echo: 'flaky' } },
    });
    expect(await f.runRow(runId)).toMatchObject({ status: 'completed', attempts: 3 });
    const started = (await f.statusEvents(runId)).filter((e) => e.type === STARTED);
    expect(started.map((e) => e.data.attempt)).toEqual([1, 2, 3]);
    const statuses = (await f.redisEntries(runId))
      .filter((e) => e.event === 'status')
      .map((e) => e.data as { status: string; attempt: number });
    expect(statuses.map((s) => `${s.status}:${s.attempt}`)).toEqual([
      'running:1',
      'retrying:1',
      'running:2',
      'retrying:2',
      'running:3',
    ]);
  });

  it('fails a permanent failure at once: attempts 1, dead-lettered, terminated with its reason', async () => {
    const runId = await f.publishExecute({ agent: 'echo', input: { fail: 'permanent' } });
    const failed = await f.terminalEvent(runId);
    expect(failed).toMatchObject({
      id: `${runId}.failed`,
      type: FAILED,
      data: {
        runId,
        agent: 'echo',
        attempts: 1,
        deadLettered: true,
        error: {
          code: 'AgentFailed',
          retryable: false,
          message: 'echo: simulated permanent failure',
        },
      },
    });
    expect(await f.runRow(runId)).toMatchObject({
      status: 'failed',
      attempts: 1,
      result_event_id: `${runId}.failed`,
    });
    await waitFor(async () => (await f.termination(runId)) !== undefined, {
      what: 'the termination record',
    });
    expect(await f.termination(runId)).toMatchObject({
      stream: 'AGENT_EXECUTION',
      consumer: 'agent-executor-workers',
      subject: 'agent.execute.echo',
      tenant_id: 'tenant-a',
      code: 'AgentFailed',
      deliveries: 1,
    });
    expect((await f.redisEntries(runId)).at(-1)).toMatchObject({
      event: 'failed',
      data: failed.data,
    });
  });

  it('dead-letters a transient failure after the last delivery with failed attempts = max_deliver', async () => {
    const runId = await f.publishExecute({ agent: 'echo', input: { fail: 'transient' } });
    const failed = await f.terminalEvent(runId);
    expect(failed.data).toMatchObject({
      attempts: 5,
      deadLettered: true,
      error: { code: 'AgentFailed', retryable: true },
    });
    await waitFor(async () => (await f.termination(runId)) !== undefined, {
      what: 'the termination record',
    });
    expect(await f.termination(runId)).toMatchObject({ deliveries: 5 });
  });

  it('terminates poison messages at once with a recorded reason while a valid one completes', async () => {
    const garbageSubject = 'agent.execute.echo';
    await f.js.publish(garbageSubject, new TextEncoder().encode('this is not a CloudEvent'), {
      msgID: randomUUID(),
    });
    const unknownAgent = await f.publishExecute({ agent: 'nobody', input: {} });
    const invalidInput = await f.publishExecute({ agent: 'echo', input: { delayMs: 'soon' } });
    const noTenant = await f.publishExecute({ agent: 'echo', input: {} }, { tenantId: null });
    const wrongSubject = await f.publishExecute(
      { agent: 'echo', input: {} },
      { subject: 'agent.execute.chat' },
    );
    const valid = await f.publishExecute({ agent: 'echo', input: { message: 'still fine' } });

    expect((await f.terminalEvent(valid)).type).toBe(COMPLETED);
    await waitFor(
      async () => {
        const all = await Promise.all(
          [unknownAgent, invalidInput, noTenant, wrongSubject].map((id) => f.termination(id)),
        );
        return all.every((t) => t !== undefined);
      },
      { what: 'termination records of the poison messages' },
    );
    expect(await f.termination(unknownAgent)).toMatchObject({
      code: 'UnknownAgent',
      deliveries: 1,
      subject: 'agent.execute.nobody',
    });
    expect(await f.termination(invalidInput)).toMatchObject({
      code: 'InvalidRequest',
      deliveries: 1,
    });
    expect(String((await f.termination(invalidInput))?.reason)).toMatch(/delayMs/);
    expect(await f.termination(noTenant)).toMatchObject({
      code: 'InvalidEvent',
      deliveries: 1,
      tenant_id: null,
    });
    expect(await f.termination(wrongSubject)).toMatchObject({
      code: 'InvalidRequest',
      deliveries: 1,
    });
    const garbage = (await f.terminationsBySubject(garbageSubject)).filter(
      (t) => t.event_id === null,
    );
    expect(garbage).toHaveLength(1);
    expect(garbage[0]).toMatchObject({ code: 'InvalidEvent', deliveries: 1 });

    // A run that cannot start still ends for whoever follows it: failed, dead-lettered.
    expect(await f.terminalEvent(unknownAgent)).toMatchObject({
      type: FAILED,
      data: { error: { code: 'UnknownAgent', retryable: false }, attempts: 1, deadLettered: true },
    });
    expect((await f.terminalEvent(invalidInput)).data).toMatchObject({
      error: { code: 'InvalidRequest' },
    });
    await waitFor(() => f.consumerIdle(), { what: 'nothing left to redeliver' });
  });

  it("never lets a tenant touch another tenant's run", async () => {
    const runId = `shared-${randomUUID()}`;
    await f.publishExecute(
      { agent: 'echo', runId, input: { message: 'mine' } },
      { tenantId: 'tenant-a' },
    );
    await f.terminalEvent(runId);
    const intruder = await f.publishExecute(
      { agent: 'echo', runId, input: { message: 'yours?' } },
      { tenantId: 'tenant-b' },
    );
    await waitFor(async () => (await f.termination(intruder)) !== undefined, {
      what: 'the intruder to be terminated',
    });
    expect(await f.termination(intruder)).toMatchObject({
      code: 'InvalidRequest',
      tenant_id: 'tenant-b',
    });
    expect(await f.runRow(runId)).toMatchObject({ tenant_id: 'tenant-a', status: 'completed' });
    expect((await f.statusEvents(runId)).every((e) => e.tenantid === 'tenant-a')).toBe(true);
  });

  it('fails a chat run whose model call is refused (4xx) without retrying', async () => {
    const runId = `chat-${randomUUID()}`;
    const original = model.reply;
    model.reply = (call) =>
      call.headers['x-aob-run-id'] === runId ? { tokens: [], status: 400 } : original(call);
    try {
      await f.publishExecute({ agent: 'chat', runId, input: { prompt: 'bad request' } });
      const failed = await f.terminalEvent(runId);
      expect(failed.data).toMatchObject({
        attempts: 1,
        error: { code: 'UpstreamError', retryable: false },
      });
    } finally {
      model.reply = original;
    }
  });

  it('retries a chat run whose model call hits a 503, then completes', async () => {
    const runId = `chat-${randomUUID()}`;
    const original = model.reply;
    let failures = 0;
    model.reply = (call) =>
      call.headers['x-aob-run-id'] === runId && failures++ < 1
        ? { tokens: [], status: 503 }
        : original(call);
    try {
      await f.publishExecute({ agent: 'chat', runId, input: { prompt: 'second time lucky' } });
      const done = await f.terminalEvent(runId);
      expect(done.data).toMatchObject({
        attempts: 2,
        output: { content: 'You said: second time lucky' },
      });
    } finally {
      model.reply = original;
    }
  });
});
