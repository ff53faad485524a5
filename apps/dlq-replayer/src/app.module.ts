import { type DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from '@aob/auth';
import { NatsModule, RedisModule, STREAMS } from '@aob/events';
import { ObservabilityModule } from '@aob/observability';
import { DatabaseModule, DataSource, DeadLetterRepository } from '@aob/persistence';
import { AdvisoryConsumer } from './capture/advisory-consumer';
import { DeadLetterCaptureService } from './capture/dead-letter-capture.service';
import { DeadLetterMetrics } from './capture/dead-letter-metrics';
import { DLQ_REPLAYER_CONFIG, type DlqReplayerConfig } from './config';
import { QuarantineSweeper } from './replay/quarantine-sweeper';

export const APP_NAME = 'dlq-replayer';

@Module({})
export class AppModule {
  static forRoot(config: DlqReplayerConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ObservabilityModule.forRoot({ app: APP_NAME, logLevel: config.LOG_LEVEL }),
        AuthModule.forRoot({
          bootstrapAdminKey: config.AOB_BOOTSTRAP_ADMIN_KEY,
          bootstrapTenant: config.AOB_BOOTSTRAP_TENANT,
          serviceKey: config.AOB_SERVICE_KEY,
        }),
        DatabaseModule.forRoot({
          url: config.DATABASE_URL,
          applicationName: APP_NAME,
          poolSize: 5,
        }),
        // aob_jetstream_stream_messages{stream="DLQ"}: the dead-letter queue's size
        NatsModule.forRoot({
          url: config.NATS_URL,
          app: APP_NAME,
          metrics: { streams: [STREAMS.DLQ.name] },
        }),
        RedisModule.forRoot({ url: config.REDIS_URL, app: APP_NAME }),
      ],
      providers: [
        { provide: DLQ_REPLAYER_CONFIG, useValue: config },
        {
          provide: DeadLetterRepository,
          inject: [DataSource],
          useFactory: (ds: DataSource) => new DeadLetterRepository(ds),
        },
        DeadLetterCaptureService,
        DeadLetterMetrics,
        AdvisoryConsumer,
        QuarantineSweeper,
      ],
    };
  }
}
