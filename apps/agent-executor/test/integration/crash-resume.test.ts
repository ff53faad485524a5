import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from '@aob/testing';
import { ExecutorFixture } from '../support/executor-fixture';
import { FakeModelGateway } from '../support/fake-model-gateway';

jest.setTimeout(180_000);

const ROOT = join(__dirname, '../../../..');
const MAIN = join(ROOT, 'apps/agent-executor/dist/main.js');

/** A real executor process (node dist/main.js) that the test can SIGKILL mid-run. */
async function startProcess(env: Record<string, string>): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4_000)));
  await waitFor(
    async () => {
      if (child.exitCode !== null)
        throw new Error(`executor exited with ${child.exitCode}: ${stderr}`);
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
    },
    { timeoutMs: 30_000, what: 'the executor process to be ready' },
  ).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n${stderr}`);
  });
  return child;
}

const kill = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

describe('agent-executor crash and resume (child process, SIGKILL)', () => {
  let f: ExecutorFixture;
  let model: FakeModelGateway;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    // The child runs the built app; turbo rebuilds it and its libs only when sources changed.
    execFileSync(
      'npx',
      ['turbo', 'run', 'build', '--filter=@aob/agent-executor...', '--output-logs=errors-only'],
      { cwd: ROOT, stdio: 'inherit', env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' } },
    );
    if (!existsSync(MAIN)) throw new Error(`${MAIN} missing after the build`);
    f = await ExecutorFixture.create();
    model = new FakeModelGateway();
    // The first call for step c hangs until the worker dies mid-call; every other call answers.
    let hung = false;
    model.reply = (call) => {
      const prompt = call.body.messages.at(-1)?.content ?? '';
      if (prompt === 'prompt c' && !hung) {
        hung = true;
        // a slow stream: it is still on its first token when the worker is killed
        return { tokens: ['never', 'answered'], tokenDelayMs: 10_000 };
      }
      return { tokens: [`answer to ${prompt}`] };
    };
    await model.start();
  });

  afterAll(async () => {
    await Promise.all(children.map(kill));
    await f?.close();
    await model?.stop();
  });

  it('resumes a 4-step run after the last checkpointed step instead of starting over', async () => {
    const env = f.env({ LOG_LEVEL: 'warn', MODEL_GATEWAY_URL: model.url });
    const first = await startProcess(env);
    children.push(first);

    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'survivor', steps: 4, delayMs: 400 },
    });
    // Dies with the worker too, and is cancelled while nobody runs it (shares the ack_wait below).
    const doomed = await f.publishExecute({
      agent: 'echo',
      input: { message: 'doomed', steps: 50, delayMs: 100 },
    });
    // Model calls a, b answered and checkpointed, c under way when the worker dies (shares the
    // ack_wait too): after the restart a and b are not called again, c is called once more.
    const llm = await f.publishExecute({
      agent: 'pipeline',
      input: {
        steps: ['a', 'b', 'c', 'd'].map((id) => ({ id, kind: 'llm', prompt: `prompt ${id}` })),
      },
    });
    await waitFor(async () => model.calls.length === 3 && (await f.checkpoints(llm)).length === 2, {
      timeoutMs: 20_000,
      intervalMs: 10,
      what: 'the pipeline inside its third model call',
    });
    await waitFor(async () => (await f.checkpoints(runId)).length >= 2, {
      timeoutMs: 20_000,
      intervalMs: 10,
      what: 'step 2 checkpoint',
    });
    await kill(first);
    const killedAt = new Date();
    const beforeCrash = await f.checkpoints(runId);
    expect(beforeCrash.map((c) => c.step)).toEqual([1, 2]);
    const doomedSteps = (await f.checkpoints(doomed)).length;
    expect(doomedSteps).toBeGreaterThan(0);
    expect(await f.runRow(doomed)).toMatchObject({ status: 'running' });
    await f.publisher.publish(
      'agentCancel',
      { runId: doomed, reason: 'worker is gone' },
      { tenantId: 'tenant-a', id: `${doomed}.cancel` },
    );

    const second = await startProcess(env);
    children.push(second);
    // Redelivery comes after the consumer's ack_wait (30 s in the catalog) since the last heartbeat.
    const done = await f.terminalEvent(runId, 60_000);
    expect(done).toMatchObject({
      type: 'aob.agent.completed.v1',
      data: { output: { echo: 'survivor' }, attempts: 2 },
    });

    const checkpoints = await f.checkpoints(runId);
    expect(checkpoints.map((c) => [c.step, c.step_id])).toEqual([
      [1, 'step-1'],
      [2, 'step-2'],
      [3, 'step-3'],
      [4, 'step-4'],
    ]);
    // Steps 1 and 2 are the rows written before the crash; 3 and 4 came after the restart.
    expect(checkpoints.slice(0, 2).map((c) => c.created_at.getTime())).toEqual(
      beforeCrash.map((c) => c.created_at.getTime()),
    );
    expect(checkpoints.slice(2).every((c) => c.created_at.getTime() > killedAt.getTime())).toBe(
      true,
    );

    const events = await f.statusEvents(runId);
    const stepEvents = events.filter((e) => e.type === 'aob.agent.step.v1').map((e) => e.data.step);
    // every step announced, in order; the step checkpointed last before the crash may be announced
    // twice (at-least-once; same event id), but no step ran twice (checkpoint timestamps above)
    expect([...new Set(stepEvents)]).toEqual([1, 2, 3, 4]);
    expect(stepEvents.length).toBeLessThanOrEqual(5);
    expect(
      events.filter((e) => e.type === 'aob.agent.started.v1').map((e) => e.data.attempt),
    ).toEqual([1, 2]);
    const redisSteps = (await f.redisEntries(runId))
      .filter((e) => e.event === 'step')
      .map((e) => (e.data as { step: number }).step);
    expect([...new Set(redisSteps)]).toEqual([1, 2, 3, 4]);
    expect(redisSteps.length).toBeLessThanOrEqual(5);
    expect(await f.runRow(runId)).toMatchObject({ status: 'completed', attempts: 2 });

    // The model run: every step once, no second model call for a step that had finished; the one
    // call cut off by the kill (never answered) is the only one made again.
    const llmDone = await f.terminalEvent(llm, 30_000);
    expect(llmDone).toMatchObject({
      type: 'aob.agent.completed.v1',
      data: { output: { last: 'answer to prompt d' }, attempts: 2 },
    });
    expect((await f.checkpoints(llm)).map((c) => [c.step, c.output])).toEqual([
      [1, 'answer to prompt a'],
      [2, 'answer to prompt b'],
      [3, 'answer to prompt c'],
      [4, 'answer to prompt d'],
    ]);
    const prompts = model.calls.map((c) => c.body.messages.at(-1)?.content);
    expect(prompts).toEqual(['prompt a', 'prompt b', 'prompt c', 'prompt c', 'prompt d']);
    expect(model.calls[2]!.abortedAt).toBeDefined();

    // The dead worker's cancelled run: redelivered to the new process, which read the cancellation
    // at start-up: it publishes cancelled instead of running another step.
    await waitFor(
      async () => (await f.statusEvents(doomed)).some((e) => e.type === 'aob.agent.cancelled.v1'),
      { timeoutMs: 10_000, what: 'the cancelled event of the dead worker run' },
    );
    expect(await f.runRow(doomed)).toMatchObject({ status: 'cancelled', attempts: 2 });
    expect((await f.checkpoints(doomed)).length).toBe(doomedSteps);
    expect(
      (await f.statusEvents(doomed)).filter((e) => e.type === 'aob.agent.started.v1'),
    ).toHaveLength(1);
    expect((await f.redisEntries(doomed)).at(-1)).toMatchObject({
      event: 'cancelled',
      data: { runId: doomed, reason: 'worker is gone' },
    });
  });
});
