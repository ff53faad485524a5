import {
  type DynamicModule,
  Global,
  Inject,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { Redis } from 'ioredis';
import { HealthRegistry } from '@aob/observability';

export const REDIS = Symbol('REDIS');

export interface RedisModuleOptions {
  /** REDIS_URL (Dragonfly or Redis). */
  url: string;
  /** Connection name (CLIENT SETNAME). */
  app: string;
}

/**
 * One ioredis connection that fails fast instead of queueing when Dragonfly is away
 * (`enableOfflineQueue: false`, one retry per command), so a dead cache never hangs a request;
 * it keeps reconnecting in the background. Registers the `redis` readiness check.
 */
@Global()
@Module({})
export class RedisModule implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  static forRoot(opts: RedisModuleOptions): DynamicModule {
    return {
      module: RedisModule,
      providers: [
        {
          provide: REDIS,
          inject: [HealthRegistry],
          useFactory: (health: HealthRegistry) => {
            const redis = new Redis(opts.url, {
              connectionName: `aob-${opts.app}`,
              maxRetriesPerRequest: 1,
              enableOfflineQueue: false,
              // commands issued in one tick share one write: concurrent runs' stream appends
              // cost one syscall instead of one each
              enableAutoPipelining: true,
              connectTimeout: 2_000,
              retryStrategy: (times) => Math.min(times * 200, 2_000),
            });
            // connection errors surface through readiness and the failing calls; avoid unhandled 'error' events
            redis.on('error', () => undefined);
            health.register('redis', async () => {
              if ((await redis.ping()) !== 'PONG') throw new Error('unexpected PING answer');
            });
            return redis;
          },
        },
      ],
      exports: [REDIS],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
