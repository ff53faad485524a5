import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ModelGatewayMetrics } from './model-gateway.metrics';

const arrivals = new WeakMap<Request, number>();

/** When the gateway took the request (performance.now()), before auth: the start of `x-aob-overhead-ms`. */
export function requestStartedAt(req: Request): number {
  return arrivals.get(req) ?? performance.now();
}

/** Counts completion requests, including those the auth guard or validation turn away. */
@Injectable()
export class RequestMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: ModelGatewayMetrics) {}

  use(req: Request, res: Response, next: NextFunction): void {
    arrivals.set(req, performance.now());
    this.metrics.countRequestOnClose(res);
    next();
  }
}
