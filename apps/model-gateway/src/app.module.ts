import {
  type DynamicModule,
  type MiddlewareConsumer,
  Module,
  type NestModule,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { AuthModule, authOptionsFromEnv } from '@aob/auth';
import { EventPublisher, NatsModule } from '@aob/events';
import { ObservabilityModule } from '@aob/observability';
import { DatabaseModule } from '@aob/persistence';
import { ModelQuotaGuard, QuotaLimiter, QuotaModule } from '@aob/quotas';
import { DEFAULT_CATALOG_PATH, loadCatalog } from './catalog/catalog-loader';
import type { Catalog } from './catalog/catalog.schema';
import { ChatCompletionsController } from './chat/chat-completions.controller';
import { ChatCompletionsService } from './chat/chat-completions.service';
import { ModelsController } from './chat/models.controller';
import type { ModelGatewayConfig } from './config';
import { ModelGatewayMetrics } from './metrics/model-gateway.metrics';
import { RequestMetricsMiddleware } from './metrics/request-metrics.middleware';
import { OpenAiExceptionFilter } from './openai/openai-exception.filter';
import { DEFAULT_MAX_OUTPUT_TOKENS, ProviderRegistry } from './providers/provider-registry';
import { ModelQuotaService } from './quotas/model-quota.service';
import { UpstreamHttpClient } from './providers/upstream-http-client';
import { DeploymentHealthRegistry } from './resilience/deployment-health';
import { HealthProber } from './resilience/health-prober';
import { Router } from './routing/router';
import { UpstreamDispatcher } from './routing/upstream-dispatcher';
import { UsagePublisher } from './usage/usage-publisher';

export const APP_NAME = 'model-gateway';

export interface ModelGatewayModuleOptions {
  /** A catalog built in code. @default loaded from MODEL_CATALOG, else the packaged default */
  catalog?: Catalog;
  /** Where the catalog's `apiKeyEnv` variables are read. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** Closes the upstream connection pools at shutdown, after the HTTP server stopped taking requests. */
class UpstreamPools implements OnApplicationShutdown {
  constructor(readonly http: UpstreamHttpClient) {}

  async onApplicationShutdown(): Promise<void> {
    await this.http.close();
  }
}

@Module({})
export class AppModule implements NestModule {
  /** @throws CatalogError when the catalog file is missing or invalid */
  static forRoot(config: ModelGatewayConfig, opts: ModelGatewayModuleOptions = {}): DynamicModule {
    const catalog = opts.catalog ?? loadCatalog(config.MODEL_CATALOG ?? DEFAULT_CATALOG_PATH);
    const metrics = new ModelGatewayMetrics();
    const http = new UpstreamHttpClient();
    // fails start-up when an upstream key is missing from the environment
    const providers = new ProviderRegistry(catalog, http, opts.env ?? process.env);
    const health = new DeploymentHealthRegistry(catalog, metrics);
    return {
      module: AppModule,
      imports: [
        ObservabilityModule.forRoot({ app: APP_NAME, logLevel: config.LOG_LEVEL }),
        // stored API keys, the audit log and tenant quota overrides live in Postgres
        DatabaseModule.forRoot({
          url: config.DATABASE_URL,
          poolSize: config.DB_POOL_SIZE,
          applicationName: `aob-${APP_NAME}`,
        }),
        AuthModule.forRoot(authOptionsFromEnv(config, { useDatabase: true })),
        // also registers the `nats` readiness check the usage publisher depends on
        NatsModule.forRoot({ url: config.NATS_URL, app: APP_NAME }),
        QuotaModule.forRoot({ config, app: APP_NAME, leases: true }),
      ],
      controllers: [ChatCompletionsController, ModelsController],
      providers: [
        { provide: Router, useValue: new Router(catalog, health) },
        { provide: ProviderRegistry, useValue: providers },
        { provide: ModelGatewayMetrics, useValue: metrics },
        { provide: UpstreamPools, useValue: new UpstreamPools(http) },
        { provide: HealthProber, useValue: new HealthProber(health, providers) },
        {
          provide: UpstreamDispatcher,
          useValue: new UpstreamDispatcher(providers, health, metrics),
        },
        {
          provide: UsagePublisher,
          inject: [EventPublisher, ModelGatewayMetrics],
          useFactory: (publisher: EventPublisher, metrics: ModelGatewayMetrics) =>
            new UsagePublisher(publisher, metrics, {
              maxQueue: config.USAGE_QUEUE_MAX,
              shutdownFlushMs: Math.min(5_000, config.SHUTDOWN_GRACE_MS),
            }),
        },
        {
          provide: ModelQuotaGuard,
          inject: [QuotaLimiter],
          // scope `models`: model calls have a request bucket of their own (see ModelQuotaService)
          useFactory: (limiter: QuotaLimiter) =>
            new ModelQuotaGuard(limiter, {
              scope: 'models',
              defaultMaxTokens: DEFAULT_MAX_OUTPUT_TOKENS,
            }),
        },
        ModelQuotaService,
        ChatCompletionsService,
        { provide: APP_FILTER, useClass: OpenAiExceptionFilter },
      ],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestMetricsMiddleware).forRoutes(ChatCompletionsController);
  }
}
