export {
  createDataSource,
  dataSourceOptions,
  ENTITIES,
  MIGRATIONS,
  type DataSourceConfig,
} from './data-source';
export {
  migrate,
  createDatabaseIfMissing,
  parseDatabaseUrl,
  quoteIdent,
  type MigrateResult,
} from './migrate';
export {
  GatewayRun,
  RUN_STATUSES,
  TERMINAL_STATUSES,
  type RunStatus,
} from './entities/gateway-run.entity';
export { OutboxMessage } from './entities/outbox-message.entity';
export { ExecutorRun, type ExecutorRunStatus } from './entities/executor-run.entity';
export { Checkpoint } from './entities/checkpoint.entity';
export { AgentRegistration } from './entities/agent-registration.entity';
export { TerminationRepository, type TerminationInput } from './termination.repository';
export { TerminationRecord } from './entities/termination-record.entity';
export { DataSource, type EntityManager, type Repository } from 'typeorm';
export { DatabaseModule } from './database.module';
export { RetentionJob, type RetentionSchedule } from './retention-job';
export { ApiKey } from './entities/api-key.entity';
export { AuditLogEntry } from './entities/audit-log-entry.entity';
export { UsageRecordRow } from './entities/usage-record.entity';
export { UsageDaily } from './entities/usage-daily.entity';
export { TenantQuota } from './entities/tenant-quota.entity';
export {
  DeadLetter,
  DEAD_LETTER_STATUSES,
  type DeadLetterStatus,
} from './entities/dead-letter.entity';
export {
  DeadLetterRepository,
  type DeadLetterScope,
  type DeadLetterRecord,
  type NewDeadLetter,
  type FailedReplay,
  type DeadLetterFilter,
  type DeadLetterListQuery,
  type ReplayPublisher,
} from './dead-letter.repository';
export {
  isConnectionError,
  retryOnConnectionError,
  connectionRetryDelayMs,
  type ConnectionRetry,
} from './connection-retry';
