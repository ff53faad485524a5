import type { RunRecord } from '../runs/run-record';
import { parseLastEventId, synthesizeTerminalEvent } from './run-events.service';

const run = (over: Partial<RunRecord>): RunRecord => ({
  runId: 'r1',
  tenantId: 't',
  agent: 'echo',
  threadId: 'th1',
  status: 'queued',
  input: {},
  output: null,
  error: null,
  usage: null,
  attempts: 1,
  durationMs: null,
  idempotencyKey: null,
  requestHash: null,
  createdAt: new Date(),
  updatedAt: new Date(),
  cursorTs: '2025-01-01T00:00:00.000000Z',
  ...over,
});

describe('parseLastEventId', () => {
  it('accepts stream entry ids and ignores blanks', () => {
    expect(parseLastEventId('1732233600000-3')).toBe('1732233600000-3');
    expect(parseLastEventId(' 1-0 ')).toBe('1-0');
    expect(parseLastEventId(undefined)).toBeUndefined();
    expect(parseLastEventId('')).toBeUndefined();
  });

  it.each(['abc', '12', '1-2-3', '-1-0'])('rejects %p', (id) => {
    expect(() => parseLastEventId(id)).toThrow(/Last-Event-ID/);
  });
});

describe('synthesizeTerminalEvent', () => {
  it('rebuilds RunResult for a completed run', () => {
    const usage = { promptTokens: 1, completionTokens: 2, totalTokens: 3, costUsd: 0 };
    expect(
      synthesizeTerminalEvent(
        run({ status: 'completed', output: { echo: 'hi' }, usage, attempts: 2, durationMs: 12 }),
      ),
    ).toEqual({
      event: 'completed',
      data: {
        runId: 'r1',
        agent: 'echo',
        threadId: 'th1',
        output: { echo: 'hi' },
        usage,
        attempts: 2,
        durationMs: 12,
      },
    });
  });

  it('rebuilds RunFailure for a failed run and {runId, reason} for a cancelled one', () => {
    const failed = synthesizeTerminalEvent(
      run({
        status: 'failed',
        error: { code: 'AgentFailed', message: 'boom', retryable: false, deadLettered: true },
        attempts: 5,
      }),
    );
    expect(failed).toEqual({
      event: 'failed',
      data: {
        runId: 'r1',
        agent: 'echo',
        threadId: 'th1',
        error: { code: 'AgentFailed', message: 'boom', retryable: false },
        attempts: 5,
        deadLettered: true,
      },
    });
    expect(
      synthesizeTerminalEvent(
        run({ status: 'cancelled', error: { code: 'Cancelled', message: 'by user' } }),
      ),
    ).toEqual({
      event: 'cancelled',
      data: { runId: 'r1', reason: 'by user' },
    });
  });

  it('has nothing for runs still going', () => {
    expect(synthesizeTerminalEvent(run({ status: 'running' }))).toBeUndefined();
  });
});
