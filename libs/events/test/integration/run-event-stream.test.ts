import Redis from 'ioredis';
import { isTerminalRunEvent, RunEventStream, type RunStreamEntry } from '@aob/events';
import { testRedisUrl, uniqueKeyPrefix } from '@aob/testing';

describe('RunEventStream (local Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let stream: RunEventStream;

  beforeAll(() => {
    redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
  });
  beforeEach(() => {
    prefix = uniqueKeyPrefix('runstream');
    stream = new RunEventStream(redis, { keyPrefix: prefix });
  });
  afterEach(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('keys a run with a hash tag', () => {
    expect(stream.key('run-1')).toBe(`${prefix}:run:{run-1}:events`);
    expect(new RunEventStream(redis).key('r')).toBe('aob:run:{r}:events');
  });

  it('appends, sets the TTL on every append, and reads back in order', async () => {
    const a = await stream.append('run-1', 'status', { status: 'running', attempt: 1 });
    await redis.expire(stream.key('run-1'), 10);
    const b = await stream.append('run-1', 'token', { text: 'Hel' });
    const c = await stream.append('run-1', 'completed', { runId: 'run-1' });
    const ttl = await redis.ttl(stream.key('run-1'));
    expect(ttl).toBeGreaterThan(89_990);
    expect(ttl).toBeLessThanOrEqual(90_000);
    expect(await stream.range('run-1')).toEqual([
      { id: a, event: 'status', data: { status: 'running', attempt: 1 } },
      { id: b, event: 'token', data: { text: 'Hel' } },
      { id: c, event: 'completed', data: { runId: 'run-1' } },
    ]);
    expect((await stream.range('run-1', a)).map((e) => e.id)).toEqual([b, c]);
    expect(await stream.range('run-1', c)).toEqual([]);
    expect((await stream.range('run-1', undefined, 2)).map((e) => e.id)).toEqual([a, b]);
    expect(await stream.range('no-such-run')).toEqual([]);
  });

  it('honours a custom TTL', async () => {
    const short = new RunEventStream(redis, { keyPrefix: prefix, ttlSeconds: 60 });
    await short.append('run-ttl', 'status', { status: 'queued', attempt: 0 });
    expect(await redis.ttl(short.key('run-ttl'))).toBeLessThanOrEqual(60);
  });

  it('rejects a malformed resume id', async () => {
    await expect(stream.range('run-1', 'not-an-id')).rejects.toMatchObject({
      code: 'InvalidRequest',
    });
  });

  it('follow yields the backlog after afterId, then live entries, and ends on abort', async () => {
    const first = await stream.append('run-2', 'status', { status: 'running', attempt: 1 });
    const second = await stream.append('run-2', 'token', { text: 'a' });
    const controller = new AbortController();
    const seen: RunStreamEntry[] = [];
    const following = (async () => {
      for await (const entry of stream.follow('run-2', {
        afterId: first,
        signal: controller.signal,
        blockMs: 200,
      })) {
        seen.push(entry);
        if (isTerminalRunEvent(entry.event)) controller.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.map((e) => e.id)).toEqual([second]);
    await stream.append('run-2', 'token', { text: 'b' });
    const done = await stream.append('run-2', 'completed', { runId: 'run-2' });
    await following;
    expect(seen.map((e) => e.event)).toEqual(['token', 'token', 'completed']);
    expect(seen.at(-1)?.id).toBe(done);

    // Resuming from the middle (Last-Event-ID) replays only what came after it.
    const resumed: string[] = [];
    const again = new AbortController();
    for await (const entry of stream.follow('run-2', {
      afterId: second,
      signal: again.signal,
      blockMs: 100,
    })) {
      resumed.push(entry.event);
      if (entry.id === done) again.abort();
    }
    expect(resumed).toEqual(['token', 'completed']);
  });

  it('follow ends promptly when aborted while blocked, and closes its connection', async () => {
    const before = Number((await redis.info('clients')).match(/connected_clients:(\d+)/)?.[1]);
    const controller = new AbortController();
    const iteration = (async () => {
      const got: RunStreamEntry[] = [];
      for await (const e of stream.follow('idle-run', {
        signal: controller.signal,
        blockMs: 5_000,
      }))
        got.push(e);
      return got;
    })();
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    controller.abort();
    expect(await iteration).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1_000);
    await new Promise((r) => setTimeout(r, 100));
    const after = Number((await redis.info('clients')).match(/connected_clients:(\d+)/)?.[1]);
    expect(after).toBeLessThanOrEqual(before);
  });

  it('isTerminalRunEvent', () => {
    expect(['completed', 'failed', 'cancelled'].every(isTerminalRunEvent)).toBe(true);
    expect(['status', 'token', 'step'].some(isTerminalRunEvent)).toBe(false);
  });
});
