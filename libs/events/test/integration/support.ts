import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { startNatsServer, type TestNatsServer } from '@aob/testing';
import { connectNats, provisionJetStream, STREAMS, type ConsumerSpec } from '@aob/events';

export interface NatsFixture {
  server: TestNatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

/** A private nats-server with the catalog's streams (no consumers: each test makes its own). */
export async function natsFixture(): Promise<NatsFixture> {
  const server = await startNatsServer();
  const nc = await connectNats({ url: server.url, name: 'events-integration-test' });
  const jsm = await jetstreamManager(nc);
  await provisionJetStream(jsm, { streams: Object.values(STREAMS), consumers: [] });
  return {
    server,
    nc,
    js: jetstream(nc),
    jsm,
    async close() {
      await nc.close();
      await server.stop();
    },
  };
}

let counter = 0;
/** A consumer on AGENT_EXECUTION that only sees `agent.execute.<agent>` of a fresh agent name. */
export function testConsumer(overrides: Partial<ConsumerSpec> = {}): {
  spec: ConsumerSpec;
  agent: string;
  subject: string;
} {
  const agent = `agent${Date.now().toString(36)}${counter++}`;
  const subject = `agent.execute.${agent}`;
  return {
    agent,
    subject,
    spec: {
      stream: 'AGENT_EXECUTION',
      durable: `test-${agent}`,
      filterSubject: subject,
      ackWaitMs: 2_000,
      maxDeliver: 5,
      maxAckPending: 1_000,
      retryBaseMs: 20,
      retryMaxMs: 200,
      ...overrides,
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventually(
  probe: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** A silent Nest logger; tests assert on behaviour, not on log lines. */
export const quietLogger = { log() {}, error() {}, warn() {}, debug() {}, verbose() {} };
