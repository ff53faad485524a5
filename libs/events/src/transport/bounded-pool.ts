/**
 * A counting semaphore: at most `size` handlers run at once in this process. Waiters are served
 * in arrival order; close() turns every pending and future acquire into `false`.
 */
export class BoundedPool {
  private active = 0;
  private closed = false;
  private readonly waiters: ((acquired: boolean) => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`pool size must be a positive integer, got ${size}`);
  }

  get inUse(): number {
    return this.active;
  }

  tryAcquire(): boolean {
    if (this.closed || this.active >= this.size) return false;
    this.active++;
    return true;
  }

  acquire(): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
    if (next && !this.closed) next(true);
    else this.active = Math.max(0, this.active - 1);
  }

  close(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter(false);
  }
}
