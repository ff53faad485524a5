import { Controller, Get, Header, Res, SetMetadata } from '@nestjs/common';
import type { Response } from 'express';
import { metricsRegistry } from '../metrics/metrics';
import { HealthRegistry } from './health-registry';

/** Marks a route (or controller) as needing no credentials. Read by the auth guard. */
export const PUBLIC_ROUTE_KEY = 'aob:public';
export const Public = () => SetMetadata(PUBLIC_ROUTE_KEY, true);

@Public()
@Controller()
export class HealthController {
  constructor(private readonly health: HealthRegistry) {}

  @Get('healthz')
  healthz() {
    return { status: 'ok' };
  }

  @Get('readyz')
  async readyz(@Res() res: Response) {
    const report = await this.health.report();
    res.status(report.ready ? 200 : 503).json({
      status: report.ready ? 'ready' : 'not ready',
      down: report.down,
      checks: report.checks,
    });
  }

  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  async metrics(@Res() res: Response) {
    res.setHeader('Content-Type', metricsRegistry.contentType);
    res.send(await metricsRegistry.metrics());
  }
}
