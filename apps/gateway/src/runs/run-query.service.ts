import { Injectable } from '@nestjs/common';
import { notFound } from '@aob/errors';
import { decodeCursor, encodeCursor } from '../common/page-cursor';
import { assertId } from '../common/validation';
import type { RunListQueryInput } from '../common/list-query';
import { toRunView, type RunRecord, type RunView } from './run-record';
import { RunRepository } from './run.repository';

export interface RunPage {
  items: RunView[];
  nextCursor?: string;
}

/** Reads of the run projection, always within the caller's tenant (another tenant's run is "not found"). */
@Injectable()
export class RunQueryService {
  constructor(private readonly runs: RunRepository) {}

  async get(tenantId: string, runId: string): Promise<RunView> {
    return toRunView(await this.record(tenantId, runId));
  }

  /** The stored run, or a 404 DomainError. */
  async record(tenantId: string, runId: string): Promise<RunRecord> {
    assertId(runId, 'runId');
    const run = await this.runs.findById(tenantId, runId);
    if (!run) throw notFound(`run ${runId}`);
    return run;
  }

  async list(tenantId: string, q: RunListQueryInput): Promise<RunPage> {
    const { items, hasMore } = await this.runs.list(tenantId, {
      limit: q.limit,
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.agent === undefined ? {} : { agent: q.agent }),
      ...(q.cursor === undefined ? {} : { after: decodeCursor(q.cursor) }),
    });
    const last = items[items.length - 1];
    return {
      items: items.map(toRunView),
      ...(hasMore && last
        ? { nextCursor: encodeCursor({ createdAt: last.cursorTs, id: last.runId }) }
        : {}),
    };
  }
}
