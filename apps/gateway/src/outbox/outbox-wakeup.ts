import { Client } from 'pg';

/** The NOTIFY channel a committed outbox insert signals on. */
export const OUTBOX_CHANNEL = 'aob_outbox';

/**
 * Wakes the relay the moment another transaction (on any gateway replica) commits an outbox row:
 * one dedicated connection LISTENing on {@link OUTBOX_CHANNEL}. Reconnects with backoff when the
 * connection drops; the relay's slow poll covers the gap.
 */
export class OutboxWakeup {
  private client: Client | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly url: string,
    private readonly onWake: () => void,
    private readonly onError: (message: string) => void,
  ) {}

  /** True while the LISTEN connection is up. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new Client({
      connectionString: this.url,
      application_name: 'aob-gateway-outbox-listen',
    });
    const lost = (reason: string) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners();
      client.end().catch(() => undefined);
      this.onError(`outbox LISTEN connection lost (${reason}); polling until it is back`);
      this.schedule();
    };
    client.on('error', (err) => lost(err.message));
    client.on('end', () => lost('closed'));
    client.on('notification', () => this.onWake());
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.client = client;
      this.failures = 0;
      // rows committed while we were not listening
      this.onWake();
    } catch (err) {
      client.removeAllListeners();
      client.end().catch(() => undefined);
      this.onError(`outbox LISTEN failed: ${(err as Error).message}`);
      this.schedule();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.failures++;
    const delay = Math.min(10_000, 200 * 2 ** Math.min(this.failures, 6));
    this.retry = setTimeout(() => void this.connect(), delay);
    this.retry.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners();
      await c.end().catch(() => undefined);
    }
  }
}
