/**
 * Whether this process exports traces. Set once by `startTracing` before anything else runs; every
 * tracing helper checks it first, so a process without an OTLP endpoint does no tracing work at
 * all (no span objects, no context propagation, no header parsing).
 */
let enabled = false;

export function tracingEnabled(): boolean {
  return enabled;
}

/** startTracing, and tests that register their own tracer provider. */
export function setTracingEnabled(value: boolean): void {
  enabled = value;
}
