import {
  type DynamicModule,
  Global,
  Inject,
  Logger,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Redis } from 'ioredis';
import { EventPublisher } from '@aob/events';
import { DataSource } from '@aob/persistence';
import { publishBudgetNotification } from './budget-events';
import { defaultLimitsFromEnv, type QuotaEnv } from './quota-env';
import { QuotaLimiter } from './quota-limiter';
import { connectQuotaRedis } from './quota-redis';
import { QuotaRepository } from './quota.repository';

/** Injection token of the quota Redis connection (short command timeout, no offline queue). */
export const QUOTA_REDIS = Symbol('QUOTA_REDIS');

export interface QuotaModuleOptions {
  /** The app's parsed config: the quota variables and REDIS_URL. */
  config: QuotaEnv & { REDIS_URL: string };
  /** App name, for the Redis connection name. */
  app: string;
  /**
   * Admissions that ask for it may be served from local leases (QUOTA_LEASE_MS): connects the
   * subscriber that ends leases when a tenant's limits change. @default false
   */
  leases?: boolean;
}

/** Injection token of the subscriber connection that follows limit changes (leases on), or null. */
export const QUOTA_INVALIDATIONS = Symbol('QUOTA_INVALIDATIONS');

/**
 * The shared quota state of one app: a Redis connection of its own (quota checks must fail fast
 * and never queue behind other traffic), the tenant-override repository and the `QuotaLimiter`.
 * Needs `DatabaseModule` and `NatsModule` (for budget notifications) in the app.
 */
@Global()
@Module({})
export class QuotaModule implements OnApplicationShutdown {
  constructor(
    @Inject(QUOTA_REDIS) private readonly redis: Redis,
    @Inject(QUOTA_INVALIDATIONS) private readonly invalidations: Redis | null,
    @Inject(QuotaLimiter) private readonly limiter: QuotaLimiter,
  ) {}

  static forRoot({ config, app, leases = false }: QuotaModuleOptions): DynamicModule {
    const url = config.QUOTA_REDIS_URL ?? config.REDIS_URL;
    const leaseMs = leases ? config.QUOTA_LEASE_MS : 0;
    return {
      module: QuotaModule,
      providers: [
        {
          provide: QUOTA_REDIS,
          useFactory: () =>
            connectQuotaRedis({
              url,
              name: `aob-${app}-quotas`,
              commandTimeoutMs: config.QUOTA_REDIS_TIMEOUT_MS,
            }),
        },
        {
          provide: QUOTA_INVALIDATIONS,
          useFactory: () =>
            leaseMs > 0
              ? connectQuotaRedis({
                  url,
                  name: `aob-${app}-quota-invalidations`,
                  commandTimeoutMs: config.QUOTA_REDIS_TIMEOUT_MS,
                })
              : null,
        },
        {
          provide: QuotaRepository,
          inject: [DataSource],
          useFactory: (ds: DataSource) => new QuotaRepository(ds),
        },
        {
          provide: QuotaLimiter,
          inject: [QUOTA_REDIS, QUOTA_INVALIDATIONS, QuotaRepository, EventPublisher],
          useFactory: async (
            redis: Redis,
            invalidations: Redis | null,
            store: QuotaRepository,
            publisher: EventPublisher,
          ) => {
            const limiter = new QuotaLimiter(redis, {
              store,
              defaults: defaultLimitsFromEnv(config),
              keyPrefix: config.QUOTA_KEY_PREFIX,
              failMode: config.QUOTA_FAIL_MODE,
              limitsCacheSeconds: config.QUOTA_LIMITS_CACHE_SECONDS,
              spendResyncSeconds: config.QUOTA_SPEND_RESYNC_SECONDS,
              warnFraction: config.QUOTA_BUDGET_WARNING_FRACTION,
              onNotification: publishBudgetNotification(publisher),
              logger: new Logger('QuotaLimiter'),
              leaseMs,
            });
            if (invalidations) await limiter.followInvalidations(invalidations);
            return limiter;
          },
        },
      ],
      exports: [QUOTA_REDIS, QuotaRepository, QuotaLimiter],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    // what leases hold goes back before the connection closes
    await this.limiter.close();
    if (this.invalidations)
      await this.invalidations.quit().catch(() => this.invalidations?.disconnect());
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
