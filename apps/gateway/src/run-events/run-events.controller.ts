import { Controller, Get, Headers, Param, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { RunEventsService } from './run-events.service';

@Controller('v1/runs')
export class RunEventsController {
  constructor(private readonly events: RunEventsService) {}

  /** Server-Sent Events; resumable with the `Last-Event-ID` header or `?lastEventId=` (for clients that cannot set headers). */
  @Get(':runId/events')
  @RequirePermission('runs:read')
  async stream(
    @CurrentPrincipal() principal: Principal,
    @Param('runId') runId: string,
    @Headers('last-event-id') lastEventIdHeader: string | undefined,
    @Query('lastEventId') lastEventIdQuery: unknown,
    @Res() res: Response,
  ): Promise<void> {
    // a repeated query parameter arrives as an array: joined, it fails validation with a clear 400
    const fromQuery = Array.isArray(lastEventIdQuery)
      ? lastEventIdQuery.join(',')
      : lastEventIdQuery;
    const lastEventId =
      lastEventIdHeader ?? (typeof fromQuery === 'string' ? fromQuery : undefined);
    await this.events.stream(principal.tenantId, runId, lastEventId, res);
  }
}
