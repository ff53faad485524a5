import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from '@aob/persistence';
import { cursorTimestampSql, type PageCursor } from '../common/page-cursor';

export interface CheckpointRecord {
  checkpointId: string;
  runId: string;
  step: number;
  stepId: string | null;
  state: unknown;
  createdAt: Date;
  cursorTs: string;
}

/** executor.checkpoints, read-only and always filtered by tenant. */
@Injectable()
export class ThreadHistoryRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /** Newest first, keyset-paginated on (created_at, checkpoint_id). */
  async page(
    tenantId: string,
    threadId: string,
    limit: number,
    after?: PageCursor,
  ): Promise<{ items: CheckpointRecord[]; hasMore: boolean }> {
    const params: unknown[] = [tenantId, threadId];
    let where = 'tenant_id = $1 AND thread_id = $2';
    if (after) {
      params.push(after.createdAt, after.id);
      where += ` AND (created_at, checkpoint_id) < ($3::timestamptz, $4::uuid)`;
    }
    params.push(limit + 1);
    const rows: {
      checkpoint_id: string;
      run_id: string;
      step: number;
      step_id: string | null;
      state: unknown;
      created_at: Date;
      cursor_ts: string;
    }[] = await this.ds.query(
      `SELECT checkpoint_id, run_id, step, step_id, state, created_at, ${cursorTimestampSql('created_at')} AS cursor_ts
         FROM executor.checkpoints WHERE ${where}
        ORDER BY created_at DESC, checkpoint_id DESC LIMIT $${params.length}`,
      params,
    );
    return {
      items: rows.slice(0, limit).map((r) => ({
        checkpointId: r.checkpoint_id,
        runId: r.run_id,
        step: r.step,
        stepId: r.step_id,
        state: r.state,
        createdAt: r.created_at,
        cursorTs: r.cursor_ts,
      })),
      hasMore: rows.length > limit,
    };
  }

  async hasCheckpoints(tenantId: string, threadId: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM executor.checkpoints WHERE tenant_id = $1 AND thread_id = $2 LIMIT 1`,
      [tenantId, threadId],
    );
    return rows.length > 0;
  }
}
