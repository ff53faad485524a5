import { CONSUMERS, JetStreamServer, NATS_CONNECTION, type ConsumerSpec } from '@aob/events';
import { bootstrapHttpApp, HealthRegistry } from '@aob/observability';
import { TerminationRepository } from '@aob/persistence';
import { type DynamicModule, type INestApplication, Module, type Type } from '@nestjs/common';
import { APP_NAME, AppModule, type ExecutorModuleOptions } from './app.module';
import type { ExecutorConfig } from './config';
import { RunCancellations } from './runs/run-cancellations';

/** The catalog's consumer with the retry backoff the environment may override (the provisioned consumer stays the catalog's). */
export function executorConsumer(config: ExecutorConfig): ConsumerSpec {
  const spec = CONSUMERS.agentExecutorWorkers;
  return {
    ...spec,
    retryBaseMs: config.EXECUTOR_RETRY_BASE_MS ?? spec.retryBaseMs,
    retryMaxMs: config.EXECUTOR_RETRY_MAX_MS ?? spec.retryMaxMs,
  };
}

/**
 * Boots the executor: HTTP (health, readiness, metrics) on PORT and the JetStream workers of the
 * durable `agent-executor-workers`. On SIGTERM (or app.close()) the transport stops pulling, lets
 * in-flight runs finish within SHUTDOWN_GRACE_MS and hands the rest back; connections close after.
 */
export async function startExecutor(
  config: ExecutorConfig,
  opts: ExecutorModuleOptions = {},
): Promise<INestApplication> {
  let consuming = false;
  const app = await bootstrapHttpApp(rootModule(AppModule.forRoot(config, opts)), {
    app: APP_NAME,
    port: config.PORT,
    configure: (nest) => {
      const terminations = nest.get(TerminationRepository);
      const transport = new JetStreamServer({
        connection: nest.get(NATS_CONNECTION),
        consumers: [executorConsumer(config)],
        concurrency: config.EXECUTOR_CONCURRENCY,
        drainTimeoutMs: config.SHUTDOWN_GRACE_MS,
        onTerminate: (t) => terminations.record(t),
      });
      nest.connectMicroservice({ strategy: transport }, { inheritAppConfig: false });
      // bootstrapHttpApp listens before the workers start: not ready until they pull.
      nest.get(HealthRegistry).register('consumer', async () => {
        if (!consuming) throw new Error('JetStream consumer not started');
      });
    },
  });
  try {
    // Cancellations first: no execution is pulled before the cancellations it may be subject to.
    await app.get(RunCancellations).start();
    await app.startAllMicroservices();
  } catch (err) {
    await app.close();
    throw err;
  }
  consuming = true;
  return app;
}

/** bootstrapHttpApp takes a module class: wrap the configured dynamic module in one. */
function rootModule(dynamic: DynamicModule): Type {
  @Module({ imports: [dynamic] })
  class AgentExecutorRootModule {}
  return AgentExecutorRootModule;
}
