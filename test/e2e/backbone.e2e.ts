/**
 * The first end-to-end path, driven only through the contract: CloudEvents on NATS, the gateway's
 * HTTP API and SSE. The five apps run as real processes.
 */
import { randomUUID } from 'node:crypto';
import { Stack } from './support/stack';
import { StatusWatcher, publishBinary, publishStructured } from './support/bus';
import { readSse, type SseEvent } from './support/sse';

jest.setTimeout(120_000);

const stack = new Stack();
let watcher: StatusWatcher;

beforeAll(async () => {
  await stack.start();
  watcher = new StatusWatcher(stack.nc);
});
afterAll(async () => {
  watcher?.stop();
  await stack.stop();
});

async function runState(
  runId: string,
  until: (r: Record<string, unknown>) => boolean,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    const res = await stack.api(`/v1/runs/${runId}`);
    if (res.status === 200) {
      last = (await res.json()) as Record<string, unknown>;
      if (until(last)) return last;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`run ${runId} never reached the expected state; last: ${JSON.stringify(last)}`);
}

async function submit(body: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await stack.api('/v1/runs', { method: 'POST', body: JSON.stringify(body), headers });
  expect(res.status).toBe(202);
  const json = (await res.json()) as { runId: string; status: string };
  expect(json.status).toBe('queued');
  return json.runId;
}

describe('CloudEvents on the bus', () => {
  it('a binary-mode execute event completes and the gateway projects it', async () => {
    const id = await publishBinary(stack.nc, 'echo', {
      agent: 'echo',
      input: { message: 'héllo wörld' },
    });
    const [completed] = await watcher.waitFor(id, 'agent.status.completed');
    expect(completed!.type).toBe('aob.agent.completed.v1');
    expect(completed!.tenantId).toBe('default');
    expect(completed!.data).toMatchObject({
      runId: id,
      agent: 'echo',
      threadId: id,
      output: { echo: 'héllo wörld' },
      attempts: 1,
    });
    const run = await runState(id, (r) => r.status === 'completed');
    expect(run).toMatchObject({
      runId: id,
      tenantId: 'default',
      agent: 'echo',
      output: { echo: 'héllo wörld' },
    });
  });

  it('a structured-mode execute event completes', async () => {
    const id = await publishStructured(stack.nc, 'echo', { agent: 'echo', input: { message: 42 } });
    const [completed] = await watcher.waitFor(id, 'agent.status.completed');
    expect(completed!.data).toMatchObject({ runId: id, output: { echo: 42 } });
  });

  it('the same event id published three times (past Nats-Msg-Id de-duplication) runs once', async () => {
    const id = randomUUID();
    const body = { agent: 'echo', input: { message: 'once', delayMs: 300 } };
    await Promise.all(
      [0, 1, 2].map((i) => publishBinary(stack.nc, 'echo', body, { id, msgId: `${id}-${i}` })),
    );
    await watcher.waitFor(id, 'agent.status.completed');
    // the two duplicates wait for the first, then answer with its stored result
    await watcher.waitFor(id, 'agent.status.completed', 30_000, 3);
    expect(watcher.of(id, 'agent.status.started')).toHaveLength(1);
    const completions = watcher.of(id, 'agent.status.completed');
    expect(new Set(completions.map((e) => e.id)).size).toBe(1);
    const history = await (await stack.api(`/v1/threads/${id}/history`)).json();
    expect((history as { items: unknown[] }).items).toHaveLength(1);
  });

  it('a republished completed run answers with the stored result without running again', async () => {
    const id = await publishBinary(stack.nc, 'echo', {
      agent: 'echo',
      input: { message: 'first' },
    });
    const [first] = await watcher.waitFor(id, 'agent.status.completed');
    await publishBinary(
      stack.nc,
      'echo',
      { agent: 'echo', input: { message: 'first' } },
      { id, msgId: `${id}-again` },
    );
    const both = await watcher.waitFor(id, 'agent.status.completed', 20_000, 2);
    expect(both[1]!.id).toBe(first!.id);
    expect(both[1]!.data).toEqual(first!.data);
    expect(watcher.of(id, 'agent.status.started')).toHaveLength(1);
  });
});

describe('HTTP runs', () => {
  it('refuses an invalid request with problem+json', async () => {
    const res = await stack.api('/v1/runs', {
      method: 'POST',
      body: JSON.stringify({ agent: 'Not An Agent!', input: {} }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const p = (await res.json()) as { status: number; type: string };
    expect(p.status).toBe(400);
  });

  it('a 3-step echo leaves 3 checkpoints, newest first', async () => {
    const runId = await submit({
      agent: 'echo',
      input: { message: 'steps', steps: 3, delayMs: 10 },
    });
    const run = await runState(runId, (r) => r.status === 'completed');
    const res = await stack.api(`/v1/threads/${run.threadId as string}/history`);
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as {
      items: { runId: string; step: number; checkpointId: string }[];
    };
    expect(items.map((i) => i.step)).toEqual([3, 2, 1]);
    expect(items.every((i) => i.runId === runId && i.checkpointId)).toBe(true);
  });

  it('a chat run streams tokens over SSE that concatenate to the completed content', async () => {
    const runId = await submit({
      agent: 'chat',
      input: { prompt: 'Tell me about event-driven agents.' },
    });
    const res = await stack.api(`/v1/runs/${runId}/events`, {
      headers: { accept: 'text/event-stream' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = await readSse(res, { timeoutMs: 30_000 });
    const kinds = events.map((e) => e.event);
    expect(kinds[kinds.length - 1]).toBe('completed');
    const tokens = events
      .filter((e) => e.event === 'token')
      .map((e) => (e.data as { text: string }).text);
    expect(tokens.length).toBeGreaterThan(3);
    const completed = events.at(-1)!.data as {
      output: { content: string; model: string };
      usage: { completionTokens: number };
    };
    expect(tokens.join('')).toBe(completed.output.content);
    expect(completed.usage.completionTokens).toBeGreaterThan(0);
    expect(events.every((e) => typeof e.id === 'string' && e.id.length > 0)).toBe(true);
  });

  it('Last-Event-ID resumes exactly after the given event', async () => {
    const runId = await submit({ agent: 'echo', input: { message: 'resume', steps: 3 } });
    await runState(runId, (r) => r.status === 'completed');
    const all = await readSse(await stack.api(`/v1/runs/${runId}/events`));
    expect(all.length).toBeGreaterThanOrEqual(5); // queued, running, 3 steps, completed
    const cut = 2;
    const rest = await readSse(
      await stack.api(`/v1/runs/${runId}/events`, { headers: { 'last-event-id': all[cut]!.id! } }),
    );
    const strip = (es: SseEvent[]) => es.map((e) => [e.id, e.event, JSON.stringify(e.data)]);
    expect(strip(rest)).toEqual(strip(all.slice(cut + 1)));
  });

  it('another tenant cannot see a run (404)', async () => {
    const id = await publishBinary(
      stack.nc,
      'echo',
      { agent: 'echo', input: {} },
      { tenant: 'someone-else' },
    );
    await watcher.waitFor(id, 'agent.status.completed');
    await new Promise((r) => setTimeout(r, 300));
    const res = await stack.api(`/v1/runs/${id}`);
    expect(res.status).toBe(404);
  });
});

describe('crash and resume', () => {
  it('killing the executor between steps and starting it again completes without repeating finished steps', async () => {
    const runId = await submit({
      agent: 'echo',
      input: { message: 'survive', steps: 4, delayMs: 1_500 },
    });
    await watcher.waitFor(runId, 'agent.status.step', 30_000, 2);
    await stack.stopApp('agent-executor', 'SIGKILL');
    const stepsBefore = watcher.of(runId, 'agent.status.step').map((e) => e.data.step);
    expect(stepsBefore.length).toBeGreaterThanOrEqual(2);
    await stack.startApp('agent-executor');
    // the killed delivery comes back after ack_wait (30 s)
    const [completed] = await watcher.waitFor(runId, 'agent.status.completed', 90_000);
    expect(completed!.data).toMatchObject({ output: { echo: 'survive' } });
    expect((completed!.data as { attempts: number }).attempts).toBeGreaterThanOrEqual(2);
    const steps = watcher.of(runId, 'agent.status.step').map((e) => e.data.step as number);
    // every step announced (the one checkpointed just before the kill may be announced twice,
    // with the same event id); none ran twice: the checkpoint history has each step once
    expect([...new Set(steps)].sort()).toEqual([1, 2, 3, 4]);
    const stepIds = watcher.of(runId, 'agent.status.step').map((e) => e.id);
    expect(new Set(stepIds).size).toBe(4);
    const history = (await (await stack.api(`/v1/threads/${runId}/history`)).json()) as {
      items: { step: number }[];
    };
    expect(history.items.map((i) => i.step)).toEqual([4, 3, 2, 1]);
  });
});
