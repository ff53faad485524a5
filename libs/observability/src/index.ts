export { createLogger, REDACT_PATHS, type LoggerOptions } from './logging/logger';
export {
  metricsRegistry,
  collectProcessMetrics,
  counter,
  gauge,
  histogram,
} from './metrics/metrics';
export type { Counter, Gauge, Histogram } from 'prom-client';
export {
  HealthRegistry,
  type ReadinessCheck,
  type ReadinessReport,
} from './health/health-registry';
export { ObservabilityModule, type ObservabilityOptions } from './observability.module';
export {
  problem,
  problemFromStatus,
  toProblem,
  sendProblem,
  PROBLEM_BASE,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
} from './http/problem-details';
export { ProblemDetailsFilter } from './http/problem-details.filter';
export { bootstrapHttpApp, type HttpAppOptions } from './http/bootstrap-http-app';
export { HealthController, Public, PUBLIC_ROUTE_KEY } from './health/health.controller';
export { startTracing, shutdownTracing } from './tracing/start';
export { tracingEnabled, setTracingEnabled } from './tracing/state';
export { tracingConfigured, type TracingEnv } from './tracing/config';
export {
  MessageSpan,
  activeTraceCarrier,
  captureTraceContext,
  contextFromCarrier,
  runWithContext,
  startMessageSpan,
  type MessageSpanInfo,
  type TraceCarrier,
} from './tracing/messaging';
export { routeTemplate, setRequestRoute } from './http/route-template';
