import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { leanRequestCancel } from './lean-request-cancel';

export interface ConnectNatsOptions {
  /** Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`. */
  url: string;
  /** Connection name shown by the server's monitoring (`/connz`): use the app's name. */
  name: string;
}

/**
 * Connects to NATS and keeps reconnecting for ever once connected: workers ride out a NATS restart
 * instead of dying. The first connect fails fast (waitOnFirstConnect false) so a misconfigured
 * URL surfaces at start-up.
 */
export async function connectNats(opts: ConnectNatsOptions): Promise<NatsConnection> {
  leanRequestCancel();
  const servers = opts.url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  try {
    return await connect({
      servers,
      name: opts.name,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: false,
      reconnectTimeWait: 1_000,
      reconnectJitter: 500,
      pingInterval: 20_000,
      // capturing a stack for every request costs ~10 % of a worker's CPU on the hot path; NATS
      // errors still say what failed, only without the caller's frames
      noAsyncTraces: true,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${opts.url}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
