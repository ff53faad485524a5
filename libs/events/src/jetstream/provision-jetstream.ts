import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerUpdateConfig,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
  type StreamUpdateConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { CONSUMERS, STREAMS, type ConsumerSpec, type StreamSpec } from '../catalog';

export type ProvisionAction = 'created' | 'updated' | 'unchanged';

export interface ProvisionReport {
  streams: { name: string; action: ProvisionAction; changed?: string[] }[];
  consumers: { stream: string; durable: string; action: ProvisionAction; changed?: string[] }[];
}

export interface ProvisionOptions {
  /** @default every stream of the catalog (STREAMS) */
  streams?: StreamSpec[];
  /** @default every consumer of the catalog (CONSUMERS) */
  consumers?: ConsumerSpec[];
}

/** Raised when existing config differs in a field JetStream cannot change in place. */
export class ProvisionConflictError extends Error {
  override readonly name = 'ProvisionConflictError';
}

const isNotFound = (err: unknown, code: number) =>
  err instanceof JetStreamApiError && err.code === code;

/**
 * Creates the catalog's streams and durable consumers, or updates the fields that may change in
 * place. Never deletes or recreates: that would drop stored messages or consumer state. Fields
 * that cannot change (storage, retention, ack/deliver policy) raise ProvisionConflictError.
 */
export async function provisionJetStream(
  jsm: JetStreamManager,
  opts: ProvisionOptions = {},
): Promise<ProvisionReport> {
  const report: ProvisionReport = { streams: [], consumers: [] };
  for (const spec of opts.streams ?? Object.values(STREAMS))
    report.streams.push(await provisionStream(jsm, spec));
  for (const spec of opts.consumers ?? Object.values(CONSUMERS))
    report.consumers.push(await provisionConsumer(jsm, spec));
  return report;
}

function streamConfig(spec: StreamSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    retention: RetentionPolicy.Limits,
    storage: spec.storage === 'memory' ? StorageType.Memory : StorageType.File,
    max_age: nanos(spec.maxAgeMs),
    duplicate_window: nanos(spec.duplicateWindowMs),
  };
}

async function provisionStream(
  jsm: JetStreamManager,
  spec: StreamSpec,
): Promise<ProvisionReport['streams'][number]> {
  const want = streamConfig(spec);
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(spec.name);
  } catch (err) {
    if (!isNotFound(err, JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add(want);
    return { name: spec.name, action: 'created' };
  }
  const have = info.config;
  for (const field of ['retention', 'storage'] as const) {
    if (have[field] !== want[field]) {
      throw new ProvisionConflictError(
        `stream ${spec.name} has ${field} "${have[field]}" but the catalog wants "${want[field]}"; JetStream cannot change it in place (migrate the stream by hand)`,
      );
    }
  }
  const update: Partial<StreamUpdateConfig> = {};
  const changed: string[] = [];
  if (!sameSet(have.subjects ?? [], want.subjects ?? [])) {
    update.subjects = want.subjects;
    changed.push('subjects');
  }
  if (have.max_age !== want.max_age) {
    update.max_age = want.max_age;
    changed.push('max_age');
  }
  if (have.duplicate_window !== want.duplicate_window) {
    update.duplicate_window = want.duplicate_window;
    changed.push('duplicate_window');
  }
  if (changed.length === 0) return { name: spec.name, action: 'unchanged' };
  await jsm.streams.update(spec.name, update);
  return { name: spec.name, action: 'updated', changed };
}

function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> {
  const config: Partial<ConsumerConfig> = {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.maxDeliver,
    max_ack_pending: spec.maxAckPending,
  };
  // 2.9.x: filter_subjects[] and metadata would be rejected (NOTES-nats.md); only filter_subject.
  if (spec.filterSubject !== undefined) config.filter_subject = spec.filterSubject;
  return config;
}

async function provisionConsumer(
  jsm: JetStreamManager,
  spec: ConsumerSpec,
): Promise<ProvisionReport['consumers'][number]> {
  const want = consumerConfig(spec);
  const id = { stream: spec.stream, durable: spec.durable };
  let info: ConsumerInfo;
  try {
    info = await jsm.consumers.info(spec.stream, spec.durable);
  } catch (err) {
    if (!isNotFound(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
    await jsm.consumers.add(spec.stream, want);
    return { ...id, action: 'created' };
  }
  const have = info.config;
  if (have.deliver_subject) {
    throw new ProvisionConflictError(
      `consumer ${spec.stream}/${spec.durable} is a push consumer; the catalog wants a pull consumer`,
    );
  }
  for (const field of ['ack_policy', 'deliver_policy'] as const) {
    if (have[field] !== want[field]) {
      throw new ProvisionConflictError(
        `consumer ${spec.stream}/${spec.durable} has ${field} "${have[field]}" but the catalog wants "${want[field]}"; JetStream cannot change it in place`,
      );
    }
  }
  const update: ConsumerUpdateConfig = {};
  const changed: string[] = [];
  for (const field of ['ack_wait', 'max_deliver', 'max_ack_pending'] as const) {
    if (have[field] !== want[field]) {
      update[field] = want[field];
      changed.push(field);
    }
  }
  if ((have.filter_subject ?? '') !== (want.filter_subject ?? '')) {
    update.filter_subject = want.filter_subject ?? '';
    changed.push('filter_subject');
  }
  if (changed.length === 0) return { ...id, action: 'unchanged' };
  await jsm.consumers.update(spec.stream, spec.durable, update);
  return { ...id, action: 'updated', changed };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s) => b.includes(s));
}
