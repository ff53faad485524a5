import { BoundedPool } from './bounded-pool';

describe('BoundedPool', () => {
  it('admits at most `size` holders and serves waiters in order', async () => {
    const pool = new BoundedPool(2);
    expect(pool.tryAcquire()).toBe(true);
    expect(await pool.acquire()).toBe(true);
    expect(pool.tryAcquire()).toBe(false);
    const order: number[] = [];
    const a = pool.acquire().then((ok) => ok && order.push(1));
    const b = pool.acquire().then((ok) => ok && order.push(2));
    pool.release();
    await a;
    expect(pool.inUse).toBe(2);
    pool.release();
    await b;
    expect(order).toEqual([1, 2]);
  });

  it('close() turns pending and later acquires into false', async () => {
    const pool = new BoundedPool(1);
    pool.tryAcquire();
    const waiting = pool.acquire();
    pool.close();
    expect(await waiting).toBe(false);
    expect(await pool.acquire()).toBe(false);
  });
});
