import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
  UseFilters,
} from '@nestjs/common';
import type { Response } from 'express';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { ProblemExceptionFilter } from '../common/problem.exception';
import { QuotaRejectedFilter } from '../quotas/quota-rejected.exception';
import { runListQuerySchema } from '../common/list-query';
import { validTraceparent } from '../common/traceparent';
import { parseOrThrow } from '../common/validation';
import { parseIdempotencyKey } from './idempotency-key';
import { RunCancellationService, type CancelAnswer } from './run-cancellation.service';
import { RunQueryService, type RunPage } from './run-query.service';
import type { RunView } from './run-record';
import { RunSubmissionService } from './run-submission.service';

@Controller('v1/runs')
@UseFilters(ProblemExceptionFilter, QuotaRejectedFilter)
export class RunsController {
  constructor(
    private readonly submission: RunSubmissionService,
    private readonly query: RunQueryService,
    private readonly cancellation: RunCancellationService,
  ) {}

  @Post()
  @HttpCode(202)
  @RequirePermission('runs:create')
  async create(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Headers('traceparent') traceparent: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<{ runId: string; status: 'queued' }> {
    const result = await this.submission.submit(principal, body, {
      ...(idempotencyKey === undefined
        ? {}
        : { idempotencyKey: parseIdempotencyKey(idempotencyKey) }),
      ...(validTraceparent(traceparent) === undefined
        ? {}
        : { traceparent: validTraceparent(traceparent) }),
    });
    for (const [name, value] of Object.entries(result.rateLimitHeaders)) res.setHeader(name, value);
    res.setHeader('Location', `/v1/runs/${encodeURIComponent(result.runId)}`);
    return { runId: result.runId, status: result.status };
  }

  @Get()
  @RequirePermission('runs:read')
  list(
    @CurrentPrincipal() principal: Principal,
    @Query() query: Record<string, unknown>,
  ): Promise<RunPage> {
    return this.query.list(principal.tenantId, parseOrThrow(runListQuerySchema, query, 'query'));
  }

  @Get(':runId')
  @RequirePermission('runs:read')
  get(@CurrentPrincipal() principal: Principal, @Param('runId') runId: string): Promise<RunView> {
    return this.query.get(principal.tenantId, runId);
  }

  /**
   * 202: the run ends `cancelled` (at once when it was never handed to a worker, else when the
   * executor has stopped it). Already cancelled: 202 again. Completed or failed: 409. Unknown or
   * another tenant's: 404.
   */
  @Post(':runId/cancel')
  @HttpCode(202)
  @RequirePermission('runs:cancel')
  cancel(
    @CurrentPrincipal() principal: Principal,
    @Param('runId') runId: string,
    @Body() body: unknown,
  ): Promise<CancelAnswer> {
    return this.cancellation.cancel(principal, runId, body);
  }
}
