import { isDomainError } from '@aob/errors';
import { echoAgent } from './echo.agent';
import { FakeAgentContext } from './fake-agent-context';

const input = (raw: unknown) => echoAgent.inputSchema.parse(raw);

describe('echo agent', () => {
  it('returns the message in one checkpointed step', async () => {
    const ctx = new FakeAgentContext();
    await expect(echoAgent.run(ctx, input({ message: { hello: ['world'] } }))).resolves.toEqual({
      echo: { hello: ['world'] },
    });
    expect(ctx.executedSteps).toEqual(['echo']);
  });

  it('echoes null when there is no message', async () => {
    await expect(echoAgent.run(new FakeAgentContext(), input({}))).resolves.toEqual({ echo: null });
  });

  it('runs `steps` checkpointed steps and skips finished ones on a redelivery', async () => {
    const ctx = new FakeAgentContext();
    await expect(
      echoAgent.run(ctx, input({ message: 'm', steps: 3, fail: 'transient', failTimes: 1 })),
    ).rejects.toThrow(/transient failure on delivery 1/);
    expect(ctx.executedSteps).toEqual(['step-1', 'step-2']);
    ctx.redeliver();
    await expect(
      echoAgent.run(ctx, input({ message: 'm', steps: 3, fail: 'transient', failTimes: 1 })),
    ).resolves.toEqual({ echo: 'm' });
    expect(ctx.executedSteps).toEqual(['step-1', 'step-2', 'step-3']);
  });

  it('fails transiently on every delivery without failTimes, retryably', async () => {
    const ctx = new FakeAgentContext();
    ctx.attempt = 7;
    const err: unknown = await echoAgent
      .run(ctx, input({ fail: 'transient' }))
      .catch((e: unknown) => e);
    expect(isDomainError(err) && err.retryable).toBe(true);
  });

  it('succeeds once the delivery count passes failTimes', async () => {
    const ctx = new FakeAgentContext();
    ctx.attempt = 3;
    await expect(
      echoAgent.run(ctx, input({ message: 1, fail: 'transient', failTimes: 2 })),
    ).resolves.toEqual({ echo: 1 });
  });

  it('fails permanently, not retryable', async () => {
    const err: unknown = await echoAgent
      .run(new FakeAgentContext(), input({ fail: 'permanent' }))
      .catch((e: unknown) => e);
    expect(isDomainError(err) && err.code === 'AgentFailed' && !err.retryable).toBe(true);
  });

  it('stops waiting when the run is aborted', async () => {
    const ctx = new FakeAgentContext();
    const started = Date.now();
    const run = echoAgent.run(ctx, input({ delayMs: 10_000 }));
    setTimeout(() => ctx.abort(new Error('shutting down')), 20);
    await expect(run).rejects.toThrow('shutting down');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('rejects unknown fields and bad types', () => {
    expect(echoAgent.inputSchema.safeParse({ delayMs: -1 }).success).toBe(false);
    expect(echoAgent.inputSchema.safeParse({ fail: 'sometimes' }).success).toBe(false);
    expect(echoAgent.inputSchema.safeParse({ stpes: 2 }).success).toBe(false);
  });
});
