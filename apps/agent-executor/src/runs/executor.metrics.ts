import { counter, histogram } from '@aob/observability';

/** How a delivery of an execute request ended. */
export type RunOutcome =
  /** executed to completion */
  | 'completed'
  /** failed for good (published agent.status.failed, dead-lettered) */
  | 'failed'
  /** cancelled (agent.status.cancelled published): before it started, or stopped mid-run */
  | 'cancelled'
  /** failed retryably: handed back to JetStream for another delivery */
  | 'retried'
  /** already finished: its stored terminal event was published again */
  | 'replayed'
  /** another delivery holds the run: this one waits */
  | 'busy'
  /** malformed for this executor (tenant, subject, run id conflict): terminated */
  | 'rejected'
  /** released at shutdown */
  | 'released';

/** Metric objects are process-global (prom-client), created once however often the module boots. */
export const executorMetrics = () => ({
  runs: counter({
    name: 'aob_runs_total',
    help: 'Deliveries of execute requests by agent and outcome',
    labelNames: ['agent', 'outcome'] as const,
  }),
  duration: histogram({
    name: 'aob_run_duration_seconds',
    help: 'Time from claiming a run to its completion or final failure',
    labelNames: ['agent'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
  }),
  steps: counter({
    name: 'aob_run_steps_total',
    help: 'Steps executed and checkpointed (steps restored from a checkpoint are not counted)',
    labelNames: ['agent'] as const,
  }),
  streamWriteErrors: counter({
    name: 'aob_executor_stream_write_errors_total',
    help: 'Failed appends to per-run Redis streams (the run carries on)',
  }),
  statusPublishErrors: counter({
    name: 'aob_executor_status_publish_errors_total',
    help: 'Failed publishes of informational status events (started, step); the run carries on',
    labelNames: ['event'] as const,
  }),
  dependencyRetries: counter({
    name: 'aob_executor_dependency_retries_total',
    help: 'Statements retried because a dependency (postgres) was unreachable; the delivery waits, holding its message',
    labelNames: ['dependency'] as const,
  }),
});

export type ExecutorMetrics = ReturnType<typeof executorMetrics>;
