import { Body, Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CurrentPrincipal, type Principal, RequirePermission } from '@aob/auth';
import { requestStartedAt } from '../metrics/request-metrics.middleware';
import { parseChatCompletionRequest } from '../openai/chat-completion-request';
import { abortWhenClientLeaves, writeEventStream } from '../openai/event-stream';
import { callerFrom } from './caller';
import { ChatCompletionsService } from './chat-completions.service';
import { routeConstraintsFrom } from './route-constraints';

@Controller('v1/chat/completions')
export class ChatCompletionsController {
  constructor(private readonly chat: ChatCompletionsService) {}

  @Post()
  @HttpCode(200)
  @RequirePermission('models:invoke')
  async create(
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const startedAt = requestStartedAt(req);
    const signal = abortWhenClientLeaves(res);
    const request = parseChatCompletionRequest(body);
    const call = {
      body: request,
      caller: callerFrom(principal, req.headers),
      constraints: routeConstraintsFrom(req.headers),
      signal,
      startedAt,
    };
    if (request.stream) {
      const stream = await this.chat.stream(call);
      await writeEventStream(res, stream.headers, stream.chunks, signal);
    } else {
      const completion = await this.chat.complete(call);
      res.status(200).set(completion.headers).json(completion.body);
    }
  }
}
