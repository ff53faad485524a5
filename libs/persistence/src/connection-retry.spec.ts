import {
  connectionRetryDelayMs,
  isConnectionError,
  retryOnConnectionError,
} from './connection-retry';

const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('isConnectionError', () => {
  it.each([
    ['socket refused', refused()],
    ['reset', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['admin shutdown', Object.assign(new Error('terminating connection'), { code: '57P01' })],
    [
      'starting up',
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    ],
    ['class 08', Object.assign(new Error('connection failure'), { code: '08006' })],
    ['pg lost connection', new Error('Connection terminated unexpectedly')],
    ['TypeORM wrapper', Object.assign(new Error('query failed'), { driverError: refused() })],
    [
      'dual-stack connect',
      Object.assign(new AggregateError([refused(), refused()]), { code: undefined }),
    ],
  ])('%s: yes', (_, err) => expect(isConnectionError(err)).toBe(true));

  it.each([
    ['unique violation', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['syntax error', Object.assign(new Error('syntax error'), { code: '42601' })],
    ['query canceled', Object.assign(new Error('canceling statement'), { code: '57014' })],
    ['plain error', new Error('boom')],
    ['not an error', 'ECONNREFUSED'],
  ])('%s: no', (_, err) => expect(isConnectionError(err)).toBe(false));
});

describe('connectionRetryDelayMs', () => {
  it('grows exponentially to the cap, jittered within the upper half of each step', () => {
    expect(connectionRetryDelayMs(1, { random: () => 0 })).toBe(50);
    expect(connectionRetryDelayMs(1, { random: () => 1 })).toBe(100);
    expect(connectionRetryDelayMs(4, { random: () => 1 })).toBe(800);
    expect(connectionRetryDelayMs(50, { random: () => 0 })).toBe(1_000);
    expect(connectionRetryDelayMs(50, { random: () => 1 })).toBe(2_000);
  });
});

describe('retryOnConnectionError', () => {
  const fast = { baseDelayMs: 1, maxDelayMs: 4 };

  it('retries connection failures until the statement succeeds, reporting each retry and the recovery', async () => {
    const retries: number[] = [];
    let recovered = -1;
    let calls = 0;
    const result = await retryOnConnectionError(
      async (attempt) => {
        calls++;
        if (attempt < 4) throw refused();
        return 'ok';
      },
      {
        ...fast,
        signal: new AbortController().signal,
        onRetry: (_e, attempt) => retries.push(attempt),
        onRecovered: (n) => (recovered = n),
      },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(4);
    expect(retries).toEqual([1, 2, 3]);
    expect(recovered).toBe(3);
  });

  it('throws any other error at once', async () => {
    let calls = 0;
    const err = new Error('boom');
    await expect(
      retryOnConnectionError(
        () => {
          calls++;
          return Promise.reject(err);
        },
        { ...fast, signal: new AbortController().signal },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('stops waiting when the signal aborts and throws the last connection error', async () => {
    const ac = new AbortController();
    const last = refused();
    let calls = 0;
    const started = Date.now();
    setTimeout(() => ac.abort(), 150);
    await expect(
      retryOnConnectionError(
        () => {
          calls++;
          return Promise.reject(last);
        },
        { signal: ac.signal, baseDelayMs: 10_000, maxDelayMs: 10_000 },
      ),
    ).rejects.toBe(last);
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('runs once without a retry scope', async () => {
    let calls = 0;
    await expect(
      retryOnConnectionError(() => {
        calls++;
        return Promise.reject(refused());
      }, undefined),
    ).rejects.toThrow('ECONNREFUSED');
    expect(calls).toBe(1);
  });
});
