import { type DynamicModule, type INestApplication, Module, type Type } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { MicroserviceOptions } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/nats-core';
import { AuthModule } from '@aob/auth';
import { CONSUMERS, NATS_CONNECTION, NatsModule, RedisModule } from '@aob/events';
import { bootstrapHttpApp, ObservabilityModule } from '@aob/observability';
import { DatabaseModule, TerminationRepository } from '@aob/persistence';
import { QuotaModule } from '@aob/quotas';
import { METERING_CONFIG, type MeteringConfig } from './config';
import { UsageBatchConsumer } from './ingestion/usage-batch-consumer';
import { UsageIngestionService } from './ingestion/usage-ingestion.service';
import { UsageRecordRepository } from './ingestion/usage-record.repository';
import { SpendTracker } from './quotas/spend-tracker';
import { RawRecordPruner } from './retention/raw-record-pruner';

export const APP_NAME = 'metering';

@Module({})
export class AppModule {
  static forRoot(config: MeteringConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ObservabilityModule.forRoot({ app: APP_NAME, logLevel: config.LOG_LEVEL }),
        AuthModule.forRoot({
          bootstrapTenant: config.AOB_BOOTSTRAP_TENANT,
          ...(config.AOB_BOOTSTRAP_ADMIN_KEY === undefined
            ? {}
            : { bootstrapAdminKey: config.AOB_BOOTSTRAP_ADMIN_KEY }),
          ...(config.AOB_SERVICE_KEY === undefined ? {} : { serviceKey: config.AOB_SERVICE_KEY }),
        }),
        DatabaseModule.forRoot({
          url: config.DATABASE_URL,
          applicationName: `aob-${APP_NAME}`,
          poolSize: config.DB_POOL_SIZE,
        }),
        // the batch consumer is no JetStreamServer: its lag and redeliveries are reported here
        NatsModule.forRoot({
          url: config.NATS_URL,
          app: APP_NAME,
          metrics: { consumers: [CONSUMERS.metering] },
        }),
        RedisModule.forRoot({ url: config.REDIS_URL, app: APP_NAME }),
        QuotaModule.forRoot({ config, app: APP_NAME }),
      ],
      providers: [
        { provide: METERING_CONFIG, useValue: config },
        UsageRecordRepository,
        UsageIngestionService,
        SpendTracker,
        RawRecordPruner,
      ],
    };
  }
}

/** bootstrapHttpApp takes a module class: wrap the dynamic module in one. */
export function createMeteringAppModule(config: MeteringConfig): Type {
  @Module({ imports: [AppModule.forRoot(config)] })
  class MeteringAppModule {}
  return MeteringAppModule;
}

/**
 * Starts metering: HTTP (health, metrics) on config.PORT (0 = any free port) and the durable
 * `metering` consumer that ingests usage events.
 */
export async function startMetering(config: MeteringConfig): Promise<INestApplication> {
  const app = await bootstrapHttpApp(createMeteringAppModule(config), {
    app: APP_NAME,
    port: config.PORT,
    configure: (nest: NestExpressApplication) => {
      const terminations = nest.get(TerminationRepository);
      nest.connectMicroservice<MicroserviceOptions>({
        strategy: new UsageBatchConsumer({
          connection: nest.get<NatsConnection>(NATS_CONNECTION),
          consumer: CONSUMERS.metering,
          ingestion: nest.get(UsageIngestionService),
          maxInFlight: config.METERING_CONCURRENCY,
          batchSize: config.METERING_BATCH_SIZE,
          batchWaitMs: config.METERING_BATCH_WAIT_MS,
          writers: config.METERING_BATCH_WRITERS,
          fetchers: config.METERING_FETCHERS,
          onTerminate: (info) => terminations.record(info),
        }),
      });
    },
  });
  await app.startAllMicroservices();
  return app;
}
