import { MicroBatcher } from './micro-batcher';

describe('MicroBatcher', () => {
  it('writes a full batch at once and resolves each caller with its result', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>({
      maxSize: 3,
      maxWaitMs: 10_000,
      maxConcurrentFlushes: 1,
      flush: async (items) => {
        batches.push(items);
        return items.map((i) => i * 10);
      },
    });
    await expect(Promise.all([b.add(1), b.add(2), b.add(3)])).resolves.toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('writes a partial batch after maxWaitMs', async () => {
    const b = new MicroBatcher<number, number>({
      maxSize: 100,
      maxWaitMs: 30,
      maxConcurrentFlushes: 1,
      flush: async (i) => i,
    });
    const t0 = Date.now();
    await expect(b.add(7)).resolves.toBe(7);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
  });

  it('keeps collecting while the writers are busy, never more writers than allowed', async () => {
    let active = 0;
    let maxActive = 0;
    const sizes: number[] = [];
    const b = new MicroBatcher<number, void>({
      maxSize: 10,
      maxWaitMs: 1,
      maxConcurrentFlushes: 2,
      flush: async (items) => {
        active++;
        maxActive = Math.max(maxActive, active);
        sizes.push(items.length);
        await new Promise((r) => setTimeout(r, 20));
        active--;
        return items.map(() => undefined);
      },
    });
    await Promise.all(Array.from({ length: 95 }, (_, i) => b.add(i)));
    expect(maxActive).toBe(2);
    expect(sizes.reduce((a, n) => a + n, 0)).toBe(95);
    expect(Math.max(...sizes)).toBe(10);
  });

  it('rejects every caller of a failed batch', async () => {
    const b = new MicroBatcher<number, void>({
      maxSize: 2,
      maxWaitMs: 5,
      maxConcurrentFlushes: 1,
      flush: async () => {
        throw new Error('database is down');
      },
    });
    const results = await Promise.allSettled([b.add(1), b.add(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('close() writes what is buffered and waits for it', async () => {
    const written: number[] = [];
    const b = new MicroBatcher<number, void>({
      maxSize: 100,
      maxWaitMs: 60_000,
      maxConcurrentFlushes: 1,
      flush: async (items) => {
        await new Promise((r) => setTimeout(r, 10));
        written.push(...items);
        return items.map(() => undefined);
      },
    });
    const pending = [b.add(1), b.add(2)];
    await b.close();
    expect(written).toEqual([1, 2]);
    await Promise.all(pending);
    await expect(b.add(3)).rejects.toThrow('closed');
  });

  it('push() batches like add() without a promise per item, and refuses items once closed', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, void>({
      maxSize: 3,
      maxWaitMs: 20,
      maxConcurrentFlushes: 1,
      flush: async (items) => {
        batches.push(items);
        return [];
      },
    });
    for (const i of [1, 2, 3, 4]) b.push(i);
    expect(batches).toEqual([[1, 2, 3]]);
    await new Promise((r) => setTimeout(r, 60));
    expect(batches).toEqual([[1, 2, 3], [4]]);
    b.push(5);
    await b.close();
    expect(batches).toEqual([[1, 2, 3], [4], [5]]);
    expect(() => b.push(6)).toThrow('closed');
  });
});
