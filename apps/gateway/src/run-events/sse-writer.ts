import type { Response } from 'express';

/**
 * Writes Server-Sent Events by hand on an Express response: `id:` comes from the Redis stream
 * entry, which Nest's @Sse cannot set from a replayed backlog. Awaits `drain` so a slow client
 * cannot make the process buffer without bound.
 */
export class SseWriter {
  private ended = false;

  constructor(private readonly res: Response) {
    res.once('close', () => {
      this.ended = true;
    });
  }

  /** True once the client went away or end() was called. */
  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }

  /** Status 200 and the stream headers; flushed at once so the client sees the stream open. */
  open(retryMs?: number): void {
    this.res.status(200);
    this.res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    this.res.setHeader('Cache-Control', 'no-cache');
    this.res.setHeader('Connection', 'keep-alive');
    // nginx and friends: do not buffer this response
    this.res.setHeader('X-Accel-Buffering', 'no');
    this.res.flushHeaders();
    if (retryMs !== undefined) this.res.write(`retry: ${Math.round(retryMs)}\n\n`);
  }

  /** One event. `data` is JSON (one line; split defensively should it ever contain newlines). */
  async event(name: string, data: unknown, id?: string): Promise<void> {
    let chunk = '';
    if (id !== undefined) chunk += `id: ${stripNewlines(id)}\n`;
    chunk += `event: ${stripNewlines(name)}\n`;
    for (const line of JSON.stringify(data ?? null).split(/\r\n|\r|\n/)) chunk += `data: ${line}\n`;
    await this.write(`${chunk}\n`);
  }

  /** A comment line (`: text`), ignored by clients: keeps idle proxies from closing the stream. */
  async comment(text: string): Promise<void> {
    await this.write(`: ${stripNewlines(text)}\n\n`);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.res.writableEnded) this.res.end();
  }

  private async write(chunk: string): Promise<void> {
    if (this.closed) return;
    if (this.res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}

function stripNewlines(s: string): string {
  return s.replace(/[\r\n]/g, ' ');
}
