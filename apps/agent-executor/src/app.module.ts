import { NatsModule, REDIS, RedisModule, RunEventStream } from '@aob/events';
import { createLogger, ObservabilityModule } from '@aob/observability';
import { DatabaseModule } from '@aob/persistence';
import { type DynamicModule, Module, type Type } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { AgentCatalogSync } from './agents/agent-catalog-sync';
import { AgentRegistrationRepository } from './agents/agent-registration.repository';
import { AgentRegistryModule } from './agents/agent-registry.module';
import { BuiltinAgentsModule } from './agents/builtin-agents.module';
import type { ExecutorConfig } from './config';
import { EXECUTOR_CONFIG, EXECUTOR_LOGGER } from './executor.tokens';
import { ModelClient } from './model/model-client';
import { CheckpointPruner } from './runs/checkpoint-pruner';
import { CheckpointRepository } from './runs/checkpoint.repository';
import { ExecuteRequestHandler } from './runs/execute-request.handler';
import { ExecutorRunRepository } from './runs/executor-run.repository';
import { RunCancellations } from './runs/run-cancellations';
import { RunExecutor } from './runs/run-executor';
import { RunStatusPublisher } from './runs/run-status.publisher';

export const APP_NAME = 'agent-executor';

export interface ExecutorModuleOptions {
  /**
   * More agent modules: each injects AgentRegistry and registers its AgentDefinitions in
   * onModuleInit (see BuiltinAgentsModule). @default []
   */
  agentModules?: (Type | DynamicModule)[];
}

@Module({})
export class AppModule {
  static forRoot(config: ExecutorConfig, opts: ExecutorModuleOptions = {}): DynamicModule {
    const logger = createLogger({ app: APP_NAME, level: config.LOG_LEVEL });
    if (!config.AOB_SERVICE_KEY) {
      logger.warn(
        'AOB_SERVICE_KEY is not set: model calls (chat, pipeline llm steps) will be refused by the model gateway',
      );
    }
    return {
      module: AppModule,
      imports: [
        ObservabilityModule.forRoot({ app: APP_NAME, logLevel: config.LOG_LEVEL }),
        DatabaseModule.forRoot({
          url: config.DATABASE_URL,
          applicationName: APP_NAME,
          poolSize: config.EXECUTOR_DB_POOL_SIZE,
        }),
        NatsModule.forRoot({ url: config.NATS_URL, app: APP_NAME }),
        RedisModule.forRoot({ url: config.REDIS_URL, app: APP_NAME }),
        AgentRegistryModule,
        BuiltinAgentsModule,
        ...(opts.agentModules ?? []),
      ],
      controllers: [ExecuteRequestHandler],
      providers: [
        { provide: EXECUTOR_CONFIG, useValue: config },
        { provide: EXECUTOR_LOGGER, useValue: logger },
        {
          provide: RunEventStream,
          inject: [REDIS],
          useFactory: (redis: Redis) =>
            new RunEventStream(redis, {
              keyPrefix: config.RUN_STREAM_KEY_PREFIX,
              ttlSeconds: config.RUN_STREAM_TTL_SECONDS,
            }),
        },
        {
          provide: ModelClient,
          useFactory: () =>
            new ModelClient({
              baseUrl: config.MODEL_GATEWAY_URL,
              // The client refuses an empty key; the gateway answers 401 to this one (non-retryable).
              apiKey: config.AOB_SERVICE_KEY ?? 'aob-service-key-not-configured',
              timeoutMs: config.MODEL_TIMEOUT_MS,
            }),
        },
        AgentRegistrationRepository,
        AgentCatalogSync,
        ExecutorRunRepository,
        CheckpointRepository,
        CheckpointPruner,
        RunStatusPublisher,
        RunCancellations,
        RunExecutor,
      ],
    };
  }
}
