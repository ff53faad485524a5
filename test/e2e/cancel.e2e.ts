/**
 * Cancellation end to end: a chat run streaming from a slow (simulated) model is cancelled over
 * HTTP; the SSE stream of the run ends with `event: cancelled` and the run is `cancelled`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Stack } from './support/stack';
import { readSse } from './support/sse';

jest.setTimeout(60_000);

const stack = new Stack();

beforeAll(async () => {
  // One deployment of the local provider, slow enough to cancel mid-stream (10 tokens/s).
  const catalog = path.join(mkdtempSync(path.join(tmpdir(), 'aob-e2e-cancel-')), 'catalog.yaml');
  writeFileSync(
    catalog,
    [
      'deployments:',
      '  - name: local-slow',
      '    provider: local',
      '    model: sim-slow',
      '    tier: balanced',
      '    inputCostPer1M: 1',
      '    outputCostPer1M: 1',
      '    maxConcurrency: 8',
      '    timeoutMs: 120000',
      '    simulate: { ttftMs: 0, tokensPerSecond: 10, maxOutputTokens: 384 }',
      '',
    ].join('\n'),
  );
  await stack.start(['model-gateway', 'agent-executor', 'gateway'], { MODEL_CATALOG: catalog });
});
afterAll(async () => {
  await stack.stop();
});

it('cancels a running chat run over HTTP: the SSE stream ends with event: cancelled', async () => {
  const submitted = await stack.api('/v1/runs', {
    method: 'POST',
    body: JSON.stringify({ agent: 'chat', input: { prompt: 'tell me a very long story' } }),
  });
  expect(submitted.status).toBe(202);
  const { runId } = (await submitted.json()) as { runId: string };

  // Follow the run until the model is streaming.
  const first = await readSse(await stack.api(`/v1/runs/${runId}/events`), {
    until: (e) => e.event === 'token',
    timeoutMs: 15_000,
  });
  expect(first.at(-1)?.event).toBe('token');

  const cancelledAt = Date.now();
  const res = await stack.api(`/v1/runs/${runId}/cancel`, {
    method: 'POST',
    body: JSON.stringify({ reason: 'user pressed stop' }),
  });
  expect(res.status).toBe(202);
  const answer = (await res.json()) as { runId: string; status: string };
  expect(answer.runId).toBe(runId);
  // the projection may not have seen the started event yet
  expect(['queued', 'running']).toContain(answer.status);

  // Resume the stream where it was left: it ends with the cancelled event.
  const rest = await readSse(
    await stack.api(`/v1/runs/${runId}/events`, {
      headers: { 'last-event-id': first.at(-1)!.id! },
    }),
    { timeoutMs: 15_000 },
  );
  const last = rest.at(-1)!;
  expect(last).toMatchObject({ event: 'cancelled', data: { runId, reason: 'user pressed stop' } });
  expect(Date.now() - cancelledAt).toBeLessThan(5_000);
  expect([...first, ...rest].some((e) => e.event === 'completed')).toBe(false);

  // The projection follows the executor's agent.status.cancelled; cancelling again is harmless.
  const deadline = Date.now() + 10_000;
  let run: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    run = (await (await stack.api(`/v1/runs/${runId}`)).json()) as Record<string, unknown>;
    if (run.status === 'cancelled') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(run).toMatchObject({
    status: 'cancelled',
    error: { code: 'Cancelled', message: 'user pressed stop' },
  });
  const again = await stack.api(`/v1/runs/${runId}/cancel`, { method: 'POST' });
  expect(again.status).toBe(202);
  expect(await again.json()).toEqual({ runId, status: 'cancelled' });
});
