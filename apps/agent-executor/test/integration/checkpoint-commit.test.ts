import { DomainError } from '@aob/errors';
import { Module, type INestApplication, type OnModuleInit } from '@nestjs/common';
import { z } from 'zod';
import { defineAgent } from '../../src/agents/agent-definition';
import { AgentRegistry } from '../../src/agents/agent-registry';
import { startExecutor } from '../../src/bootstrap';
import { loadExecutorConfig } from '../../src/config';
import { ExecutorFixture } from '../support/executor-fixture';

jest.setTimeout(60_000);

const COMPLETED = 'aob.agent.completed.v1';
const STEP = 'aob.agent.step.v1';

/** How often each step body of `between-steps` ran, by run id and step id. */
const executions = new Map<string, number>();
const ran = (runId: string, step: string) =>
  executions.set(`${runId}/${step}`, (executions.get(`${runId}/${step}`) ?? 0) + 1);

/** Fails retryably on its first delivery after step `a` finished and before step `b` starts. */
const betweenStepsAgent = defineAgent({
  name: 'between-steps',
  description: 'test: a retryable failure between two steps',
  version: '1',
  inputSchema: z.object({}).strict(),
  async run(ctx) {
    const a = await ctx.step('a', async () => {
      ran(ctx.runId, 'a');
      return { a: 1 };
    });
    if (ctx.attempt === 1) {
      throw new DomainError('AgentFailed', 'between the steps', { retryable: true });
    }
    const b = await ctx.step('b', async () => {
      ran(ctx.runId, 'b');
      return { b: 2 };
    });
    return { ...a, ...b };
  },
});

@Module({})
class BetweenStepsAgentModule implements OnModuleInit {
  constructor(private readonly registry: AgentRegistry) {}
  onModuleInit(): void {
    this.registry.register(betweenStepsAgent);
  }
}

// The last step's checkpoint is written in the statement that completes the run; an earlier step's
// before the run's next side effect. These pin what that must not change.
describe('checkpoint commits (private nats-server, fresh database, local Redis)', () => {
  let f: ExecutorFixture;
  let app: INestApplication;

  beforeAll(async () => {
    f = await ExecutorFixture.create();
    app = await startExecutor(loadExecutorConfig(f.env()), {
      agentModules: [BetweenStepsAgentModule],
    });
  });

  afterAll(async () => {
    await app?.close();
    await f?.close();
  });

  it('stores the last step with the completion, and its step event precedes the completed one', async () => {
    const runId = await f.publishExecute({ agent: 'echo', input: { message: 'one' } });
    expect((await f.terminalEvent(runId)).type).toBe(COMPLETED);

    const [checkpoint] = await f.checkpoints(runId);
    const run = await f.runRow(runId);
    expect(checkpoint).toMatchObject({ step: 1, step_id: 'echo', output: { echo: 'one' } });
    expect(run).toMatchObject({ status: 'completed', lease_owner: null });

    const events = await f.statusEvents(runId);
    expect(events.map((e) => e.type)).toEqual(['aob.agent.started.v1', STEP, COMPLETED]);
    const { rows } = await f.pg.query(
      'SELECT checkpoint_id FROM executor.checkpoints WHERE run_id = $1',
      [runId],
    );
    expect(events[1]?.data).toMatchObject({ step: 1, checkpointId: rows[0].checkpoint_id });

    const entries = (await f.redisEntries(runId)).map((e) => e.event);
    expect(entries).toEqual(['status', 'step', 'completed']);
  });

  it('keeps a step that finished before a retryable failure: the next delivery resumes after it', async () => {
    const runId = await f.publishExecute({ agent: 'between-steps', input: {} });
    const done = await f.terminalEvent(runId);
    expect(done).toMatchObject({
      type: COMPLETED,
      data: { output: { a: 1, b: 2 }, attempts: 2 },
    });
    expect(executions.get(`${runId}/a`)).toBe(1);
    expect(executions.get(`${runId}/b`)).toBe(1);
    expect((await f.checkpoints(runId)).map((c) => [c.step, c.step_id])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    const steps = (await f.statusEvents(runId)).filter((e) => e.type === STEP);
    expect(steps.map((e) => e.data.step)).toEqual([1, 2]);
  });
});
