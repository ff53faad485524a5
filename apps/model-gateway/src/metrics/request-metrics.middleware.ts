import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ModelGatewayMetrics } from './model-gateway.metrics';

/** Counts completion requests, including those the auth guard or validation turn away. */
@Injectable()
export class RequestMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: ModelGatewayMetrics) {}

  use(_req: Request, res: Response, next: NextFunction): void {
    this.metrics.countRequestOnClose(res);
    next();
  }
}
