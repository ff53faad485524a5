export * from './catalog';

export {
  NATS,
  isJsonContentType,
  STRUCTURED_CONTENT_TYPE,
  type NatsMessage,
} from './binding/nats-binding';
export {
  decodeCloudEvent,
  decodeCloudEventDetailed,
  encodeBinary,
  encodeStructured,
  type NatsCloudEventMessage,
} from './binding/cloud-event-codec';
export type { DecodedCloudEvent } from './binding/nats-binding';
export { percentEncodeHeaderValue, percentDecodeHeaderValue } from './binding/percent-encoding';

export { connectNats, type ConnectNatsOptions } from './jetstream/connect-nats';
export { leanRequestCancel } from './jetstream/lean-request-cancel';
export {
  provisionJetStream,
  ProvisionConflictError,
  type ProvisionAction,
  type ProvisionOptions,
  type ProvisionReport,
} from './jetstream/provision-jetstream';
export {
  EventPublisher,
  type PublishOptions,
  type PublishResult,
} from './jetstream/event-publisher';
export { subjectMatches } from './jetstream/subject-match';

export { trackJetStream, redeliveriesCounter } from './jetstream/jetstream-metrics';
export {
  JetStreamServer,
  JETSTREAM_TRANSPORT,
  startConsumerSpan,
  type DeliveredEvent,
  type JetStreamServerOptions,
} from './transport/jetstream-server';
export { JetStreamContext, type JetStreamConsumerRef } from './transport/jetstream-context';
export type { InboundEvent } from './transport/inbound-event';
export { JetStreamExceptionFilter } from './transport/jetstream-exception-filter';
export {
  settlementFor,
  retryDelayMs,
  describeFailure,
  terminationInfo,
  type TerminationInfo,
  type Settlement,
  type HandlingOutcome,
  type DeliveryAttempt,
  type RetryPolicy,
} from './transport/settlement';

export {
  RunEventStream,
  isTerminalRunEvent,
  type RunStreamEventName,
  type RunStreamEntry,
  type RunEventStreamOptions,
  type FollowOptions,
} from './run-stream/run-event-stream';

export {
  NatsModule,
  NATS_CONNECTION,
  JETSTREAM,
  JETSTREAM_MANAGER,
  type NatsModuleOptions,
} from './nest/nats.module';
export { RedisModule, REDIS, type RedisModuleOptions } from './nest/redis.module';
export {
  copyToDeadLetterStream,
  replayDeadLetter,
  headersToRecord,
  deadLetterCopyMsgId,
  replayMsgId,
  REPLAY_EXTENSION,
  REPLAY_HEADER,
  type DeadMessage,
  type StoredHeaders,
} from './jetstream/dead-letter-replay';
export { BoundedPool } from './transport/bounded-pool';
