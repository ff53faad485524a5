import { Injectable } from '@nestjs/common';
import { notFound } from '@aob/errors';
import { decodeCursor, encodeCursor, type PageCursor } from '../common/page-cursor';
import { invalid, assertId } from '../common/validation';
import type { z } from 'zod';
import type { pageQuerySchema } from '../common/list-query';
import { RunRepository } from '../runs/run.repository';
import { ThreadHistoryRepository } from './thread-history.repository';

export interface ThreadHistoryItem {
  checkpointId: string;
  runId: string;
  /** Counts from 1 within a run. */
  step: number;
  stepId?: string;
  createdAt: string;
  state: unknown;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class ThreadHistoryService {
  constructor(
    private readonly checkpoints: ThreadHistoryRepository,
    private readonly runs: RunRepository,
  ) {}

  /** The thread's checkpoints, newest first. 404 when the tenant has neither runs nor checkpoints in it. */
  async history(
    tenantId: string,
    threadId: string,
    q: z.infer<typeof pageQuerySchema>,
  ): Promise<{ items: ThreadHistoryItem[]; nextCursor?: string }> {
    assertId(threadId, 'threadId');
    let after: PageCursor | undefined;
    if (q.cursor !== undefined) {
      after = decodeCursor(q.cursor);
      // checkpoint ids are uuids: a cursor of another list would fail in SQL otherwise
      if (!UUID.test(after.id))
        throw invalid('cursor is invalid', [
          { path: 'cursor', message: 'not a cursor of this list' },
        ]);
    }
    const { items, hasMore } = await this.checkpoints.page(tenantId, threadId, q.limit, after);
    if (
      items.length === 0 &&
      after === undefined &&
      !(await this.runs.threadExists(tenantId, threadId))
    ) {
      throw notFound(`thread ${threadId}`);
    }
    const last = items[items.length - 1];
    return {
      items: items.map((c) => ({
        checkpointId: c.checkpointId,
        runId: c.runId,
        step: c.step,
        ...(c.stepId === null ? {} : { stepId: c.stepId }),
        createdAt: c.createdAt.toISOString(),
        state: c.state,
      })),
      ...(hasMore && last
        ? { nextCursor: encodeCursor({ createdAt: last.cursorTs, id: last.checkpointId }) }
        : {}),
    };
  }
}
