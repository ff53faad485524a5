import {
  type DynamicModule,
  Global,
  Inject,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { HealthRegistry } from '@aob/observability';
import { createDataSource, type DataSourceConfig } from './data-source';
import { TerminationRepository } from './termination.repository';

/**
 * Provides one initialised TypeORM `DataSource` (inject `DataSource`) and the
 * `TerminationRepository` every consumer records into, registers the `postgres` readiness check
 * and closes the pool on shutdown.
 */
@Global()
@Module({})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  static forRoot(cfg: DataSourceConfig): DynamicModule {
    return {
      module: DatabaseModule,
      providers: [
        {
          provide: DataSource,
          inject: [HealthRegistry],
          useFactory: async (health: HealthRegistry) => {
            const ds = createDataSource(cfg);
            await ds.initialize();
            health.register('postgres', async () => {
              await ds.query('SELECT 1');
            });
            return ds;
          },
        },
        {
          provide: TerminationRepository,
          inject: [DataSource],
          useFactory: (ds: DataSource) => new TerminationRepository(ds),
        },
      ],
      exports: [DataSource, TerminationRepository],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.ds.isInitialized) await this.ds.destroy();
  }
}
