import { DataSource, type DataSourceOptions } from 'typeorm';
import { AgentRegistration } from './entities/agent-registration.entity';
import { Checkpoint } from './entities/checkpoint.entity';
import { ExecutorRun } from './entities/executor-run.entity';
import { GatewayRun } from './entities/gateway-run.entity';
import { OutboxMessage } from './entities/outbox-message.entity';
import { TerminationRecord } from './entities/termination-record.entity';
import { InitialSchema1763776800000 } from './migrations/1763776800000-initial-schema';
import { GatewayRunIndexes1763776900000 } from './migrations/1763776900000-gateway-run-indexes';
import { ExecutorRunLease1763777000000 } from './migrations/1763777000000-executor-run-lease';
import { MeteringUsageQuotas1763777200000 } from './migrations/1763777200000-metering-usage-quotas';
import { UsageRecordRow } from './entities/usage-record.entity';
import { UsageDaily } from './entities/usage-daily.entity';
import { TenantQuota } from './entities/tenant-quota.entity';
import { AuthApiKeysAuditLog1763777100000 } from './migrations/1763777100000-auth-api-keys-audit-log';
import { ApiKey } from './entities/api-key.entity';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { DeadLetter } from './entities/dead-letter.entity';
import { DlqDeadLetters1763777300000 } from './migrations/1763777300000-dlq-dead-letters';
import { ExecutorRunReplays1763777400000 } from './migrations/1763777400000-executor-run-replays';
import { CheckpointRetentionIndex1763777500000 } from './migrations/1763777500000-checkpoint-retention-index';
import { ExecutorRunLeaseSeq1763777600000 } from './migrations/1763777600000-executor-run-lease-seq';
import { DropExecutorRunsTenantIndex1763777700000 } from './migrations/1763777700000-drop-executor-runs-tenant-index';
import { ExecutorRunHasCheckpoints1763777800000 } from './migrations/1763777800000-executor-run-has-checkpoints';

export const ENTITIES = [
  GatewayRun,
  OutboxMessage,
  ExecutorRun,
  Checkpoint,
  AgentRegistration,
  TerminationRecord,
  ApiKey,
  AuditLogEntry,
  UsageRecordRow,
  UsageDaily,
  TenantQuota,
  DeadLetter,
];
/** Every migration, in order. Committed and reviewed; never generated at run time. */
export const MIGRATIONS = [
  InitialSchema1763776800000,
  GatewayRunIndexes1763776900000,
  ExecutorRunLease1763777000000,
  AuthApiKeysAuditLog1763777100000,
  MeteringUsageQuotas1763777200000,
  DlqDeadLetters1763777300000,
  ExecutorRunReplays1763777400000,
  CheckpointRetentionIndex1763777500000,
  ExecutorRunLeaseSeq1763777600000,
  DropExecutorRunsTenantIndex1763777700000,
  ExecutorRunHasCheckpoints1763777800000,
];

export interface DataSourceConfig {
  /** postgres:// URL (DATABASE_URL). */
  url: string;
  /** Pool size per process. @default 10 */
  poolSize?: number;
  /** Name shown in pg_stat_activity. @default 'aob' */
  applicationName?: string;
}

export function dataSourceOptions(cfg: DataSourceConfig): DataSourceOptions {
  return {
    type: 'postgres',
    url: cfg.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'aob_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: ['error'],
    poolSize: cfg.poolSize ?? 10,
    applicationName: cfg.applicationName ?? 'aob',
    extra: {
      // fail fast instead of hanging a request when Postgres is away
      connectionTimeoutMillis: 5_000,
      statement_timeout: 30_000,
      idle_in_transaction_session_timeout: 60_000,
    },
  };
}

/** A DataSource that is not yet initialised. */
export function createDataSource(cfg: DataSourceConfig): DataSource {
  return new DataSource(dataSourceOptions(cfg));
}
