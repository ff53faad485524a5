import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RunEventStream } from '@aob/events';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';

/** The RunEventStream SSE responses read from (the injectable RunEventStream is the writer). */
export const RUN_STREAM_READER = Symbol('RUN_STREAM_READER');
const READER_REDIS = Symbol('READER_REDIS');

/**
 * A Redis connection of its own for SSE readers. `RunEventStream.follow` blocks on XREAD over a
 * `duplicate()` of its client; a duplicate of the shared fail-fast client
 * (`enableOfflineQueue: false`) rejects that first XREAD because it is not connected yet. This
 * client queues commands until it is connected (still one retry per command), so a follower
 * starts reliably; requests never wait on it, only open event streams do.
 */
@Injectable()
class ReaderRedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(READER_REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export const runStreamReaderProviders: Provider[] = [
  {
    provide: READER_REDIS,
    inject: [GATEWAY_CONFIG],
    useFactory: (config: GatewayConfig) => {
      const redis = new Redis(config.REDIS_URL, {
        connectionName: 'aob-gateway-sse',
        maxRetriesPerRequest: 1,
        enableOfflineQueue: true,
        connectTimeout: 2_000,
        retryStrategy: (times) => Math.min(times * 200, 2_000),
      });
      // failures surface through the rejected reads (the SSE response ends; the client resumes)
      redis.on('error', () => undefined);
      return redis;
    },
  },
  ReaderRedisLifecycle,
  {
    provide: RUN_STREAM_READER,
    inject: [READER_REDIS, GATEWAY_CONFIG],
    useFactory: (redis: Redis, config: GatewayConfig) =>
      new RunEventStream(redis, { keyPrefix: config.RUN_STREAM_KEY_PREFIX }),
  },
];
