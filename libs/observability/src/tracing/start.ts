import type * as HttpInstrumentationModule from '@opentelemetry/instrumentation-http';
import type * as IORedisInstrumentationModule from '@opentelemetry/instrumentation-ioredis';
import type * as PgInstrumentationModule from '@opentelemetry/instrumentation-pg';
import type * as UndiciInstrumentationModule from '@opentelemetry/instrumentation-undici';
import type * as SdkNodeModule from '@opentelemetry/sdk-node';
import { routeTemplate } from '../http/route-template';
import { tracingConfigured } from './config';
import { setTracingEnabled, tracingEnabled } from './state';

/** Requests the HTTP instrumentation never traces (probes and scrapes). */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

let sdk: SdkNodeModule.NodeSDK | undefined;

/**
 * Starts the OpenTelemetry Node SDK when an OTLP endpoint is configured (see `tracingConfigured`),
 * and does nothing otherwise: the SDK packages are not even loaded. Call it before Nest, express,
 * http, pg or ioredis are loaded (each app's `src/tracing.ts`, imported first by its `main.ts`),
 * so the instrumentations can hook them.
 *
 * Everything else comes from the standard `OTEL_*` environment, read by the SDK:
 * `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`
 * (`http/protobuf` by default, `http/json`, `grpc`), `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`,
 * `OTEL_SERVICE_NAME` (default: the app name), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
 * (+`_ARG`), `OTEL_PROPAGATORS` (W3C trace context and baggage by default), `OTEL_BSP_*`.
 * Metrics and logs stay with Prometheus and pino: `OTEL_METRICS_EXPORTER` and
 * `OTEL_LOGS_EXPORTER` default to `none` here.
 *
 * @returns whether tracing is on
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (tracingEnabled()) return true;
  if (!tracingConfigured(env)) return false;
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded only when tracing is on, synchronously, before the modules they instrument */
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof SdkNodeModule;
  const { HttpInstrumentation } =
    require('@opentelemetry/instrumentation-http') as typeof HttpInstrumentationModule;
  const { UndiciInstrumentation } =
    require('@opentelemetry/instrumentation-undici') as typeof UndiciInstrumentationModule;
  const { PgInstrumentation } =
    require('@opentelemetry/instrumentation-pg') as typeof PgInstrumentationModule;
  const { IORedisInstrumentation } =
    require('@opentelemetry/instrumentation-ioredis') as typeof IORedisInstrumentationModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
  sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName }),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => QUIET_PATHS.has((req.url ?? '').split('?')[0]!),
        // background HTTP (health probes of upstreams) starts no traces of its own
        requireParentforOutgoingSpans: true,
        // `POST /v1/runs/:runId/cancel` rather than `POST`: the route template Nest matched
        applyCustomAttributesOnSpan: (span, req) => {
          const route = routeTemplate(req);
          if (route === undefined) return;
          span.setAttribute('http.route', route);
          span.updateName(`${(req as { method?: string }).method ?? 'GET'} ${route}`);
        },
      }),
      // fetch(): the executor's calls to the model gateway, the gateway's to its upstreams
      new UndiciInstrumentation({ requireParentforSpans: true }),
      // queries and Redis commands only inside traced work, never as traces of their own
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  setTracingEnabled(true);
  return true;
}

/** Exports what is buffered and stops the SDK (once; a no-op when tracing is off). */
export async function shutdownTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  if (!running) return;
  setTracingEnabled(false);
  await running.shutdown().catch(() => undefined);
}
