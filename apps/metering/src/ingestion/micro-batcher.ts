export interface MicroBatcherOptions<T, R> {
  /** A batch is written as soon as it holds this many items. */
  maxSize: number;
  /** ... or once its oldest item has waited this long. */
  maxWaitMs: number;
  /** Batches written at once; items keep collecting meanwhile. */
  maxConcurrentFlushes: number;
  /** Writes one batch; returns one result per item, in order. If it throws, every item's add() rejects. */
  flush: (items: T[]) => Promise<R[]>;
}

interface Pending<T, R> {
  item: T;
  resolve?: (r: R) => void;
  reject?: (e: unknown) => void;
}

/**
 * Collects items handed in by concurrent callers into batches (up to maxSize, or after maxWaitMs)
 * and resolves each caller's promise with its item's result once its batch was written, so a
 * JetStream handler acks only what is durable.
 */
export class MicroBatcher<T, R> {
  private buffer: Pending<T, R>[] = [];
  private oldestAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private active = 0;
  private readonly flushing = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly opts: MicroBatcherOptions<T, R>) {}

  add(item: T): Promise<R> {
    if (this.closed) return Promise.reject(new Error('batcher is closed'));
    return new Promise<R>((resolve, reject) => {
      if (this.buffer.length === 0) this.oldestAt = Date.now();
      this.buffer.push({ item, resolve, reject });
      this.pump();
    });
  }

  /**
   * Like add(), without a promise per item: for a flush that settles its items itself (and so
   * must not throw: a throw is dropped). Throws if the batcher is closed.
   */
  push(item: T): void {
    if (this.closed) throw new Error('batcher is closed');
    if (this.buffer.length === 0) this.oldestAt = Date.now();
    this.buffer.push({ item });
    if (this.buffer.length >= this.opts.maxSize || !this.timer) this.pump();
  }

  /** Items waiting for a batch. */
  get waiting(): number {
    return this.buffer.length;
  }

  /** Writes what is buffered now and waits for every batch in flight. Later add() calls reject. */
  async close(): Promise<void> {
    this.closed = true;
    this.pump();
    while (this.flushing.size > 0 || this.buffer.length > 0) {
      await Promise.allSettled([...this.flushing]);
      this.pump();
    }
  }

  private pump(): void {
    while (this.active < this.opts.maxConcurrentFlushes && this.buffer.length > 0) {
      const due =
        this.closed ||
        this.buffer.length >= this.opts.maxSize ||
        Date.now() - this.oldestAt >= this.opts.maxWaitMs;
      if (!due) break;
      const batch = this.buffer.splice(0, this.opts.maxSize);
      if (this.buffer.length > 0) this.oldestAt = Date.now();
      this.start(batch);
    }
    if (this.buffer.length > 0 && this.active < this.opts.maxConcurrentFlushes) this.arm();
    else this.disarm();
  }

  private start(batch: Pending<T, R>[]): void {
    this.active++;
    const done = (async () => {
      try {
        const results = await this.opts.flush(batch.map((p) => p.item));
        batch.forEach((p, i) => p.resolve?.(results[i] as R));
      } catch (err) {
        for (const p of batch) p.reject?.(err);
      } finally {
        this.active--;
      }
    })();
    this.flushing.add(done);
    void done.finally(() => {
      this.flushing.delete(done);
      this.pump();
    });
  }

  private arm(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.opts.maxWaitMs - (Date.now() - this.oldestAt));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, wait);
  }

  private disarm(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
