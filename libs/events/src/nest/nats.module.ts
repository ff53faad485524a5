import {
  type DynamicModule,
  Global,
  Inject,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { HealthRegistry } from '@aob/observability';
import { connectNats } from '../jetstream/connect-nats';
import { EventPublisher } from '../jetstream/event-publisher';
import { trackJetStream } from '../jetstream/jetstream-metrics';
import { provisionJetStream } from '../jetstream/provision-jetstream';
import { eventSource } from '../catalog';

export const NATS_CONNECTION = Symbol('NATS_CONNECTION');
export const JETSTREAM = Symbol('JETSTREAM');
export const JETSTREAM_MANAGER = Symbol('JETSTREAM_MANAGER');

export interface NatsModuleOptions {
  /** NATS_URL. */
  url: string;
  /** App name: the connection name and the CloudEvent source `aob://<app>`. */
  app: string;
  /** Create or update the catalog's streams and consumers at start-up. @default true */
  provision?: boolean;
  /**
   * JetStream state this app reports on /metrics (`aob_jetstream_*`): durable consumers it reads
   * outside JetStreamServer (which reports its own) and streams whose size matters (the DLQ).
   */
  metrics?: { consumers?: { stream: string; durable: string }[]; streams?: string[] };
}

/**
 * One NATS connection per process, its JetStream client and manager, an `EventPublisher`, the
 * `nats` readiness check, and a drain on shutdown.
 */
@Global()
@Module({})
export class NatsModule implements OnApplicationShutdown {
  constructor(@Inject(NATS_CONNECTION) private readonly nc: NatsConnection) {}

  static forRoot(opts: NatsModuleOptions): DynamicModule {
    return {
      module: NatsModule,
      providers: [
        {
          provide: NATS_CONNECTION,
          inject: [HealthRegistry],
          useFactory: async (health: HealthRegistry) => {
            const nc = await connectNats({ url: opts.url, name: opts.app });
            health.register('nats', async () => {
              if (nc.isClosed()) throw new Error('connection closed');
              await nc.flush();
              // JetStream must answer too, not only the core server
              await (await jetstreamManager(nc)).getAccountInfo();
            });
            if (opts.provision !== false) await provisionJetStream(await jetstreamManager(nc));
            if (opts.metrics) {
              const untrack = trackJetStream(nc, opts.metrics);
              void nc.closed().then(untrack);
            }
            return nc;
          },
        },
        {
          provide: JETSTREAM,
          inject: [NATS_CONNECTION],
          useFactory: (nc: NatsConnection) => jetstream(nc),
        },
        {
          provide: JETSTREAM_MANAGER,
          inject: [NATS_CONNECTION],
          useFactory: (nc: NatsConnection) => jetstreamManager(nc),
        },
        {
          provide: EventPublisher,
          inject: [JETSTREAM],
          useFactory: (js: JetStreamClient) => new EventPublisher(js, eventSource(opts.app)),
        },
      ],
      exports: [NATS_CONNECTION, JETSTREAM, JETSTREAM_MANAGER, EventPublisher],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => this.nc.close());
  }
}

export type { JetStreamManager };
