import { randomUUID } from 'node:crypto';
import { waitFor } from '@aob/testing';
import type { INestApplication } from '@nestjs/common';
import { ExecutorFixture } from '../support/executor-fixture';
import { FakeModelGateway } from '../support/fake-model-gateway';

jest.setTimeout(30_000);

const CANCELLED = 'aob.agent.cancelled.v1';
const STARTED = 'aob.agent.started.v1';
const COMPLETED = 'aob.agent.completed.v1';

describe('agent-executor cancellation (agent.control.cancel)', () => {
  let f: ExecutorFixture;
  let model: FakeModelGateway;
  let app: INestApplication | undefined;

  const cancel = (runId: string, reason: string, tenantId = 'tenant-a') =>
    f.publisher.publish(
      'agentCancel',
      { runId, reason },
      { id: `${runId}.cancel.${tenantId}`, tenantId },
    );

  const cancelledEvent = async (runId: string) => {
    let found: Awaited<ReturnType<ExecutorFixture['statusEvents']>>[number] | undefined;
    await waitFor(
      async () => {
        found = (await f.statusEvents(runId)).find((e) => e.type === CANCELLED);
        return found !== undefined;
      },
      { timeoutMs: 10_000, intervalMs: 20, what: `the cancelled event of ${runId}` },
    );
    return found!;
  };

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

  it('aborts a running chat run: the model stream is closed within a second, the run ends cancelled', async () => {
    // A slow model: 60 tokens, 100 ms apart (6 s).
    model.reply = () => ({
      tokens: Array.from({ length: 60 }, (_, i) => `t${i} `),
      tokenDelayMs: 100,
    });
    const runId = await f.publishExecute({ agent: 'chat', input: { prompt: 'talk slowly' } });
    await waitFor(async () => (await f.redisEntries(runId)).some((e) => e.event === 'token'), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'the first streamed token',
    });
    const call = model.calls.find((c) => c.headers['x-aob-run-id'] === runId)!;
    expect(call.abortedAt).toBeUndefined();

    const cancelledAt = Date.now();
    await cancel(runId, 'user pressed stop');
    await waitFor(async () => call.abortedAt !== undefined, {
      timeoutMs: 2_000,
      intervalMs: 10,
      what: 'the upstream model request to be closed',
    });
    expect(call.abortedAt! - cancelledAt).toBeLessThan(1_000);

    const event = await cancelledEvent(runId);
    expect(event).toMatchObject({
      id: `${runId}.cancelled`,
      subject: runId,
      tenantid: 'tenant-a',
      data: { runId, agent: 'chat', reason: 'user pressed stop' },
    });
    const events = await f.statusEvents(runId);
    expect(events.map((e) => e.type)).toEqual([STARTED, CANCELLED]);
    expect(await f.runRow(runId)).toMatchObject({
      status: 'cancelled',
      result_event_id: `${runId}.cancelled`,
      result_type: CANCELLED,
      lease_owner: null,
    });
    const entries = await f.redisEntries(runId);
    expect(entries.at(-1)).toMatchObject({
      event: 'cancelled',
      data: { runId, reason: 'user pressed stop' },
    });
    expect(entries.some((e) => e.event === 'completed')).toBe(false);
    await waitFor(() => f.consumerIdle(), { timeoutMs: 5_000, what: 'the message to be acked' });

    // Terminal like a completion: a republished request answers with the cancelled event again.
    const calls = model.calls.length;
    await f.publishExecute(
      { agent: 'chat', input: { prompt: 'talk slowly' }, runId },
      { id: randomUUID() },
    );
    await waitFor(() => f.consumerIdle(), { timeoutMs: 5_000, what: 'the republished request' });
    expect(model.calls.length).toBe(calls);
    expect(await f.runRow(runId)).toMatchObject({ status: 'cancelled' });
  });

  it('never starts a queued run cancelled while no executor ran, and ignores another tenant’s cancel', async () => {
    await app?.close();
    app = undefined;
    model.reply = () => ({ tokens: ['never'] });
    const calls = model.calls.length;
    const queued = await f.publishExecute({ agent: 'chat', input: { prompt: 'too late' } });
    const other = await f.publishExecute({ agent: 'echo', input: { message: 'mine' } });
    await cancel(queued, 'changed my mind');
    // A cancel from another tenant for tenant-a's run does nothing.
    await cancel(other, 'not yours', 'tenant-b');

    // The new process reads the control stream before it pulls the executions. (Long retry
    // backoff from here: a run waiting for its retry is cancelled below.)
    app = await f.startApp({
      MODEL_GATEWAY_URL: model.url,
      EXECUTOR_RETRY_BASE_MS: '8000',
      EXECUTOR_RETRY_MAX_MS: '8000',
    });
    const event = await cancelledEvent(queued);
    expect(event.data).toEqual({ runId: queued, agent: 'chat', reason: 'changed my mind' });
    expect((await f.statusEvents(queued)).map((e) => e.type)).toEqual([CANCELLED]);
    expect(model.calls.length).toBe(calls);
    expect(await f.checkpoints(queued)).toEqual([]);
    expect((await f.redisEntries(queued)).map((e) => e.event)).toEqual(['cancelled']);

    expect((await f.terminalEvent(other)).type).toBe(COMPLETED);
    expect(await f.runRow(other)).toMatchObject({ status: 'completed' });
  });

  it('aborts the model call of a pipeline llm step, keeping the steps before it', async () => {
    model.reply = (call) =>
      call.body.messages.at(-1)?.content === 'second'
        ? { tokens: Array.from({ length: 60 }, (_, i) => `s${i} `), tokenDelayMs: 100 }
        : { tokens: ['first answer'] };
    const runId = await f.publishExecute({
      agent: 'pipeline',
      input: {
        steps: [
          { id: 'a', kind: 'llm', prompt: 'first' },
          { id: 'b', kind: 'llm', prompt: 'second' },
          { id: 'c', kind: 'tool', tool: 'uppercase', args: { text: '{{steps.b}}' } },
        ],
      },
    });
    let call: (typeof model.calls)[number] | undefined;
    await waitFor(
      async () => {
        call = model.calls.find(
          (c) =>
            c.headers['x-aob-run-id'] === runId && c.body.messages.at(-1)?.content === 'second',
        );
        return call !== undefined && (await f.redisEntries(runId)).some((e) => e.event === 'token');
      },
      { timeoutMs: 10_000, intervalMs: 20, what: 'step b streaming' },
    );
    const cancelledAt = Date.now();
    await cancel(runId, 'pipeline stop');
    await waitFor(async () => call!.abortedAt !== undefined, {
      timeoutMs: 2_000,
      intervalMs: 10,
      what: 'the step b model request to be closed',
    });
    expect(call!.abortedAt! - cancelledAt).toBeLessThan(1_000);
    expect((await cancelledEvent(runId)).data).toMatchObject({ reason: 'pipeline stop' });
    expect((await f.checkpoints(runId)).map((c) => c.step_id)).toEqual(['a']);
    expect(await f.runRow(runId)).toMatchObject({ status: 'cancelled' });
  });

  it('ends a run waiting for its retry at once, not at its next delivery', async () => {
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'flaky', fail: 'transient', failTimes: 1 },
    });
    await waitFor(
      async () =>
        (await f.redisEntries(runId)).some(
          (e) => e.event === 'status' && (e.data as { status: string }).status === 'retrying',
        ),
      { timeoutMs: 10_000, intervalMs: 20, what: 'the run to wait for its retry' },
    );
    const cancelledAt = Date.now();
    await cancel(runId, 'no retry please');
    const event = await cancelledEvent(runId);
    // well before the 8 s backoff ends
    expect(Date.now() - cancelledAt).toBeLessThan(3_000);
    expect(event.data).toEqual({ runId, agent: 'echo', reason: 'no retry please' });
    expect(await f.runRow(runId)).toMatchObject({
      status: 'cancelled',
      attempts: 1,
      result_event_id: `${runId}.cancelled`,
    });
    expect((await f.redisEntries(runId)).at(-1)).toMatchObject({
      event: 'cancelled',
      data: { runId, reason: 'no retry please' },
    });
  });

  it('stops a multi-step echo run at the next step boundary, keeping the finished steps', async () => {
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'steps', steps: 20, delayMs: 100 },
    });
    await waitFor(async () => (await f.checkpoints(runId)).length >= 2, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'two checkpoints',
    });
    await cancel(runId, 'enough');
    await cancelledEvent(runId);
    const steps = (await f.checkpoints(runId)).length;
    expect(steps).toBeGreaterThanOrEqual(2);
    expect(steps).toBeLessThan(20);
    await new Promise((r) => setTimeout(r, 300));
    expect((await f.checkpoints(runId)).length).toBe(steps);
    expect(await f.runRow(runId)).toMatchObject({ status: 'cancelled' });
  });
});
