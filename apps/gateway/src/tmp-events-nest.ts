// TEMPORARY until @aob/events exports its Nest modules.
export { NatsModule, NATS_CONNECTION, JETSTREAM, JETSTREAM_MANAGER } from '../../../libs/events/src/nest/nats.module';
export { RedisModule, REDIS } from '../../../libs/events/src/nest/redis.module';
