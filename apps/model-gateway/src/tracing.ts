// Imported first by main.ts: starts OpenTelemetry tracing (only when an OTLP endpoint is
// configured) before Nest, http, pg or ioredis are loaded, so they can be instrumented.
import { startTracing } from '@aob/observability/tracing';

startTracing('model-gateway');
