import type { RunStatus } from '@aob/persistence';

/** A row of gateway.runs as the services see it. */
export interface RunRecord {
  runId: string;
  tenantId: string;
  agent: string;
  threadId: string;
  status: RunStatus;
  input: unknown;
  output: unknown;
  error: unknown;
  usage: unknown;
  attempts: number;
  durationMs: number | null;
  idempotencyKey: string | null;
  requestHash: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** created_at as microsecond ISO text: the keyset pagination position. */
  cursorTs: string;
}

export interface RunRow {
  run_id: string;
  tenant_id: string;
  agent: string;
  thread_id: string;
  status: RunStatus;
  input: unknown;
  output: unknown;
  error: unknown;
  usage: unknown;
  attempts: number;
  duration_ms: number | null;
  idempotency_key: string | null;
  request_hash: string | null;
  created_at: Date;
  updated_at: Date;
  cursor_ts: string;
}

export function toRunRecord(r: RunRow): RunRecord {
  return {
    runId: r.run_id,
    tenantId: r.tenant_id,
    agent: r.agent,
    threadId: r.thread_id,
    status: r.status,
    input: r.input,
    output: r.output,
    error: r.error,
    usage: r.usage,
    attempts: r.attempts,
    durationMs: r.duration_ms,
    idempotencyKey: r.idempotency_key,
    requestHash: r.request_hash,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    cursorTs: r.cursor_ts,
  };
}

/** The public run shape of CONTRACT.md section 6. */
export interface RunView {
  runId: string;
  tenantId: string;
  agent: string;
  status: RunStatus;
  threadId: string;
  input: unknown;
  output?: unknown;
  error?: unknown;
  usage?: unknown;
  attempts: number;
  durationMs?: number;
  createdAt: string;
  updatedAt: string;
}

export function toRunView(r: RunRecord): RunView {
  const view: RunView = {
    runId: r.runId,
    tenantId: r.tenantId,
    agent: r.agent,
    status: r.status,
    threadId: r.threadId,
    input: r.input ?? null,
    attempts: r.attempts,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
  // SQL NULL means "not there yet"; a JSON null output of a completed run is kept.
  if (r.status === 'completed') view.output = r.output;
  if (r.error !== null && r.error !== undefined) view.error = r.error;
  if (r.usage !== null && r.usage !== undefined) view.usage = r.usage;
  if (r.durationMs !== null) view.durationMs = r.durationMs;
  return view;
}
