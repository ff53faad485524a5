import { type DynamicModule, Global, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { randomUUID } from 'node:crypto';
import { HealthController } from './health/health.controller';
import { HealthRegistry } from './health/health-registry';
import { logDestination, REDACT_PATHS } from './logging/logger';
import { collectProcessMetrics } from './metrics/metrics';

export interface ObservabilityOptions {
  app: string;
  /** pino level. @default 'info' */
  logLevel?: string;
}

const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** Logging (nestjs-pino, request ids, redaction), /healthz, /readyz, /metrics. */
@Global()
@Module({})
export class ObservabilityModule {
  static forRoot(opts: ObservabilityOptions): DynamicModule {
    collectProcessMetrics();
    return {
      module: ObservabilityModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            stream: logDestination(),
            level: opts.logLevel ?? 'info',
            base: { app: opts.app, pid: process.pid },
            redact: { paths: REDACT_PATHS, censor: '[redacted]' },
            genReqId: (req, res) => {
              const given = req.headers['x-request-id'];
              const id =
                typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
              res.setHeader('x-request-id', id);
              return id;
            },
            autoLogging: { ignore: (req) => QUIET_PATHS.has(req.url ?? '') },
            serializers: {
              req: (req: { id: unknown; method: unknown; url: unknown }) => ({
                id: req.id,
                method: req.method,
                url: req.url,
              }),
              // status only: response headers are noise in every line and may carry cookies
              res: (res: { statusCode: unknown }) => ({ statusCode: res.statusCode }),
            },
          },
        }),
      ],
      controllers: [HealthController],
      providers: [HealthRegistry],
      exports: [HealthRegistry],
    };
  }
}
