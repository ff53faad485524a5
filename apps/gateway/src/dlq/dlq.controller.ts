import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { CurrentPrincipal, RequirePermission, type Principal } from '@aob/auth';
import { parseOrThrow } from '../common/validation';
import { DeadLetterService, type DeadLetterPage } from './dead-letter.service';
import {
  bulkReplaySchema,
  deadLetterListQuerySchema,
  type DeadLetterView,
} from './dead-letter-view';

/** `/v1/dlq`: dead letters of the caller's tenant (admin of tenant `*`: all). */
@Controller('v1/dlq')
export class DlqController {
  constructor(private readonly deadLetters: DeadLetterService) {}

  @Get()
  @RequirePermission('dlq:manage')
  list(
    @CurrentPrincipal() principal: Principal,
    @Query() query: Record<string, unknown>,
  ): Promise<DeadLetterPage> {
    return this.deadLetters.list(
      principal,
      parseOrThrow(deadLetterListQuerySchema, query, 'query'),
    );
  }

  /** Bulk replay by filter: `{status?, subject?, ids?}` -> `{replayed}`. */
  @Post('replay')
  @HttpCode(202)
  @RequirePermission('dlq:manage')
  replayMany(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
  ): Promise<{ replayed: number }> {
    return this.deadLetters.replayMany(
      principal,
      parseOrThrow(bulkReplaySchema, body ?? {}, 'body'),
    );
  }

  @Get(':id')
  @RequirePermission('dlq:manage')
  get(@CurrentPrincipal() principal: Principal, @Param('id') id: string): Promise<DeadLetterView> {
    return this.deadLetters.get(principal, id);
  }

  @Post(':id/replay')
  @HttpCode(202)
  @RequirePermission('dlq:manage')
  replay(
    @CurrentPrincipal() principal: Principal,
    @Param('id') id: string,
  ): Promise<DeadLetterView> {
    return this.deadLetters.replay(principal, id);
  }

  @Delete(':id')
  @HttpCode(204)
  @RequirePermission('dlq:manage')
  async discard(@CurrentPrincipal() principal: Principal, @Param('id') id: string): Promise<void> {
    await this.deadLetters.discard(principal, id);
  }
}
