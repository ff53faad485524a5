/** JetStream streams and durable pull consumers of CONTRACT.md section 3, side by side. */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Maximum age of a message, in milliseconds. */
  maxAgeMs: number;
  /** Window in which a repeated Nats-Msg-Id is stored once. @default 120000 */
  duplicateWindowMs: number;
  storage: 'file' | 'memory';
}

export const STREAMS = {
  AGENT_EXECUTION: {
    name: 'AGENT_EXECUTION',
    subjects: ['agent.execute.>'],
    maxAgeMs: DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
  AGENT_STATUS: {
    name: 'AGENT_STATUS',
    subjects: ['agent.status.>'],
    maxAgeMs: 7 * DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
  METERING: {
    name: 'METERING',
    subjects: ['metering.>'],
    maxAgeMs: 30 * DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
  /**
   * Added to the contract: control events for running and queued runs (`agent.control.cancel`).
   * Every executor follows it with an ephemeral ordered consumer from the start (24 h back).
   */
  AGENT_CONTROL: {
    name: 'AGENT_CONTROL',
    subjects: ['agent.control.>'],
    maxAgeMs: DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
  DLQ: {
    name: 'DLQ',
    subjects: ['dlq.>'],
    maxAgeMs: 30 * DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
  /**
   * The server's dead-message advisories, kept: core-NATS advisories are at-most-once, so the
   * dlq-replayer reads them from here and misses none while it is down (NOTES-nats.md).
   */
  AOB_ADVISORIES: {
    name: 'AOB_ADVISORIES',
    subjects: [
      '$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>',
      '$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>',
    ],
    maxAgeMs: 30 * DAY,
    duplicateWindowMs: 120_000,
    storage: 'file',
  },
} as const satisfies Record<string, StreamSpec>;

export type StreamName = keyof typeof STREAMS;

export interface ConsumerSpec {
  stream: StreamName;
  durable: string;
  /** Only messages on this subject filter. @default every subject of the stream */
  filterSubject?: string;
  /** Time the server waits for an ack before redelivering. Handlers send working() well within it. */
  ackWaitMs: number;
  /** Deliveries before the message is dead (advisory MAX_DELIVERIES). */
  maxDeliver: number;
  /** Unacked messages in flight across all replicas (>= replicas x per-pod concurrency). */
  maxAckPending: number;
  /** Base of the exponential nak(delay) for retryable errors. */
  retryBaseMs: number;
  /** Cap of that delay. */
  retryMaxMs: number;
}

export const CONSUMERS = {
  agentExecutorWorkers: {
    stream: 'AGENT_EXECUTION',
    durable: 'agent-executor-workers',
    ackWaitMs: 30_000,
    maxDeliver: 5,
    maxAckPending: 1_000,
    retryBaseMs: 1_000,
    retryMaxMs: 60_000,
  },
  gatewayRunStatus: {
    stream: 'AGENT_STATUS',
    durable: 'gateway-run-status',
    ackWaitMs: 30_000,
    maxDeliver: 20,
    maxAckPending: 10_000,
    retryBaseMs: 500,
    retryMaxMs: 30_000,
  },
  metering: {
    stream: 'METERING',
    durable: 'metering',
    ackWaitMs: 30_000,
    maxDeliver: 20,
    maxAckPending: 20_000,
    retryBaseMs: 500,
    retryMaxMs: 30_000,
  },
  /**
   * The dlq-replayer's capture of dead-message advisories. Unlimited deliveries: a capture that
   * keeps failing (Postgres down) is retried, never dead-lettered itself.
   */
  dlqReplayer: {
    stream: 'AOB_ADVISORIES',
    durable: 'dlq-replayer',
    ackWaitMs: 30_000,
    maxDeliver: -1,
    maxAckPending: 1_000,
    retryBaseMs: 500,
    retryMaxMs: 30_000,
  },
} as const satisfies Record<string, ConsumerSpec>;

export type ConsumerKey = keyof typeof CONSUMERS;
