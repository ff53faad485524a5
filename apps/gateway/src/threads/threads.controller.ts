import { Controller, Get, Param, Query } from '@nestjs/common';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { pageQuerySchema } from '../common/list-query';
import { parseOrThrow } from '../common/validation';
import { ThreadHistoryService, type ThreadHistoryItem } from './thread-history.service';

@Controller('v1/threads')
export class ThreadsController {
  constructor(private readonly history: ThreadHistoryService) {}

  @Get(':threadId/history')
  @RequirePermission('runs:read')
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('threadId') threadId: string,
    @Query() query: Record<string, unknown>,
  ): Promise<{ items: ThreadHistoryItem[]; nextCursor?: string }> {
    return this.history.history(
      principal.tenantId,
      threadId,
      parseOrThrow(pageQuerySchema, query, 'query'),
    );
  }
}
