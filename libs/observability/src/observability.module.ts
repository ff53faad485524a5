import {
  type DynamicModule,
  Global,
  Injectable,
  Module,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { randomUUID } from 'node:crypto';
import { HealthController } from './health/health.controller';
import { HealthRegistry } from './health/health-registry';
import { logDestination, REDACT_PATHS } from './logging/logger';
import { collectProcessMetrics } from './metrics/metrics';
import { shutdownTracing } from './tracing/start';
import { traceLogMixin } from './tracing/log-fields';

/** Exports the spans still buffered when the app stops (nothing to do when tracing is off). */
@Injectable()
class TracingShutdown implements OnApplicationShutdown {
  async onApplicationShutdown(): Promise<void> {
    await shutdownTracing();
  }
}

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
    const mixin = traceLogMixin();
    return {
      module: ObservabilityModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            stream: logDestination(),
            level: opts.logLevel ?? 'info',
            base: { app: opts.app, pid: process.pid },
            // trace_id / span_id of the active span on every line, when tracing is on
            ...(mixin === undefined ? {} : { mixin }),
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
      providers: [HealthRegistry, TracingShutdown],
      exports: [HealthRegistry],
    };
  }
}
