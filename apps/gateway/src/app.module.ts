import { type DynamicModule, type INestApplication, Module, type Type } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { MicroserviceOptions } from '@nestjs/microservices';
import type { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { AuthModule, authOptionsFromEnv } from '@aob/auth';
import {
  CONSUMERS,
  JetStreamServer,
  NATS_CONNECTION,
  NatsModule,
  REDIS,
  RedisModule,
  RunEventStream,
} from '@aob/events';
import { bootstrapHttpApp, ObservabilityModule } from '@aob/observability';
import { QuotaModule } from '@aob/quotas';
import {
  DatabaseModule,
  DataSource,
  DeadLetterRepository,
  TerminationRepository,
} from '@aob/persistence';
import { AgentRegistry } from './agents/agent-registry';
import { AgentRepository } from './agents/agent.repository';
import { AgentsController } from './agents/agents.controller';
import { ApiKeysController } from './api-keys/api-keys.controller';
import { GATEWAY_CONFIG, type GatewayConfig } from './config';
import { OpenApiController } from './openapi/openapi.controller';
import { DeadLetterService } from './dlq/dead-letter.service';
import { DlqController } from './dlq/dlq.controller';
import { QuotaAdmissionService } from './quotas/quota-admission.service';
import { QuotasController } from './quotas/quotas.controller';
import { QuotasService } from './quotas/quotas.service';
import { UsageController } from './usage/usage.controller';
import { UsageRepository } from './usage/usage.repository';
import { UsageService } from './usage/usage.service';
import { OutboxRelay } from './outbox/outbox-relay';
import { OutboxRepository } from './outbox/outbox.repository';
import { RunProjectionRepository } from './projection/run-projection.repository';
import { RunProjectionService } from './projection/run-projection.service';
import { RunStatusHandler } from './projection/run-status.handler';
import { RunEventsController } from './run-events/run-events.controller';
import { RunEventsService } from './run-events/run-events.service';
import { RunQueryService } from './runs/run-query.service';
import { RunCancellationService } from './runs/run-cancellation.service';
import { RunSubmissionService } from './runs/run-submission.service';
import { RunRepository } from './runs/run.repository';
import { RunsController } from './runs/runs.controller';
import { ThreadHistoryRepository } from './threads/thread-history.repository';
import { ThreadHistoryService } from './threads/thread-history.service';
import { ThreadsController } from './threads/threads.controller';

export const APP_NAME = 'gateway';

/** The gateway's Nest module, built from a parsed config (tests pass their own). */
@Module({})
export class GatewayModule {
  static forRoot(config: GatewayConfig): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        ObservabilityModule.forRoot({ app: APP_NAME, logLevel: config.LOG_LEVEL }),
        // stored API keys and the audit log live in Postgres (DatabaseModule below)
        AuthModule.forRoot(authOptionsFromEnv(config, { useDatabase: true })),
        DatabaseModule.forRoot({
          url: config.DATABASE_URL,
          poolSize: config.DB_POOL_SIZE,
          applicationName: `aob-${APP_NAME}`,
        }),
        NatsModule.forRoot({ url: config.NATS_URL, app: APP_NAME }),
        RedisModule.forRoot({ url: config.REDIS_URL, app: APP_NAME }),
        QuotaModule.forRoot({ config, app: APP_NAME }),
      ],
      controllers: [
        RunsController,
        RunEventsController,
        ThreadsController,
        AgentsController,
        ApiKeysController,
        OpenApiController,
        DlqController,
        RunStatusHandler,
        UsageController,
        QuotasController,
      ],
      providers: [
        { provide: GATEWAY_CONFIG, useValue: config },
        {
          provide: RunEventStream,
          inject: [REDIS],
          useFactory: (redis: Redis) =>
            new RunEventStream(redis, { keyPrefix: config.RUN_STREAM_KEY_PREFIX }),
        },
        {
          provide: DeadLetterRepository,
          inject: [DataSource],
          useFactory: (ds: DataSource) => new DeadLetterRepository(ds),
        },
        DeadLetterService,
        OutboxRepository,
        OutboxRelay,
        RunRepository,
        RunSubmissionService,
        RunCancellationService,
        RunQueryService,
        RunEventsService,
        RunProjectionRepository,
        RunProjectionService,
        ThreadHistoryRepository,
        ThreadHistoryService,
        AgentRepository,
        AgentRegistry,
        UsageRepository,
        UsageService,
        QuotaAdmissionService,
        QuotasService,
      ],
    };
  }
}

/** bootstrapHttpApp takes a module class: wrap the dynamic module in one. */
export function createGatewayAppModule(config: GatewayConfig): Type {
  @Module({ imports: [GatewayModule.forRoot(config)] })
  class GatewayAppModule {}
  return GatewayAppModule;
}

/**
 * Starts the gateway: HTTP on config.PORT (0 = any free port) and the `gateway-run-status`
 * JetStream consumer that feeds the run projection.
 */
export async function startGateway(config: GatewayConfig): Promise<INestApplication> {
  const app = await bootstrapHttpApp(createGatewayAppModule(config), {
    app: APP_NAME,
    port: config.PORT,
    corsOrigins: [...config.CORS_ORIGINS],
    configure: (nest: NestExpressApplication) => {
      const terminations = nest.get(TerminationRepository);
      nest.connectMicroservice<MicroserviceOptions>({
        strategy: new JetStreamServer({
          connection: nest.get<NatsConnection>(NATS_CONNECTION),
          consumers: [CONSUMERS.gatewayRunStatus],
          concurrency: config.PROJECTION_CONCURRENCY,
          onTerminate: (info) => terminations.record(info),
        }),
      });
    },
  });
  await app.startAllMicroservices();
  return app;
}
