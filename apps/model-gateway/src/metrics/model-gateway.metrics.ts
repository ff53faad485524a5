import type { ServerResponse } from 'node:http';
import { counter, gauge, histogram } from '@aob/observability';

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The model gateway's Prometheus metrics (process-global; created once). */
export class ModelGatewayMetrics {
  readonly requests = counter({
    name: 'aob_model_gateway_requests_total',
    help: 'Chat completion requests by serving deployment ("none" when unresolved) and HTTP status (499: client went away)',
    labelNames: ['deployment', 'status'] as const,
  });

  readonly tokens = counter({
    name: 'aob_model_gateway_tokens_total',
    help: 'Tokens processed by deployment and kind (prompt, completion)',
    labelNames: ['deployment', 'kind'] as const,
  });

  readonly timeToFirstToken = histogram({
    name: 'aob_model_gateway_ttft_seconds',
    help: 'Time from request to the first content token of a streamed completion',
    labelNames: ['deployment'] as const,
    buckets: LATENCY_BUCKETS,
  });

  readonly duration = histogram({
    name: 'aob_model_gateway_request_duration_seconds',
    help: 'Time from request to the last byte of a completion, by deployment and mode (stream, batch)',
    labelNames: ['deployment', 'mode'] as const,
    buckets: LATENCY_BUCKETS,
  });

  readonly usageEvents = counter({
    name: 'aob_model_gateway_usage_events_total',
    help: 'Usage events by outcome: published, retried (a failed attempt), dropped (queue full or invalid), lost (unsent at shutdown)',
    labelNames: ['outcome'] as const,
  });

  readonly usageQueueDepth = gauge({
    name: 'aob_model_gateway_usage_queue_depth',
    help: 'Usage events waiting to be published to JetStream',
  });

  readonly upstreamLatency = histogram({
    name: 'aob_model_gateway_upstream_latency_seconds',
    help: 'Latency of successful upstream attempts by deployment and mode: time to the first token (stream) or to the whole answer (batch)',
    labelNames: ['deployment', 'mode'] as const,
    buckets: LATENCY_BUCKETS,
  });

  readonly upstreamErrors = counter({
    name: 'aob_model_gateway_upstream_errors_total',
    help: 'Failed upstream attempts by deployment and reason (rate_limited, server, connection, timeout, protocol, auth, not_found, context_length, bad_request, circuit_open, at_capacity, mid_stream)',
    labelNames: ['deployment', 'reason'] as const,
  });

  readonly retries = counter({
    name: 'aob_model_gateway_retries_total',
    help: 'Retries of the same deployment after a failed attempt',
    labelNames: ['deployment'] as const,
  });

  readonly failovers = counter({
    name: 'aob_model_gateway_failovers_total',
    help: 'Requests moved on from a deployment to the next candidate, by the deployment given up',
    labelNames: ['deployment'] as const,
  });

  readonly circuitState = gauge({
    name: 'aob_model_gateway_circuit_state',
    help: 'Circuit breaker state by deployment: 0 closed, 1 open, 2 half-open',
    labelNames: ['deployment'] as const,
  });

  readonly deploymentUp = gauge({
    name: 'aob_model_gateway_deployment_up',
    help: 'Whether the background health probe finds the deployment alive (1) or not (0)',
    labelNames: ['deployment'] as const,
  });

  readonly inFlight = gauge({
    name: 'aob_model_gateway_in_flight',
    help: 'Upstream calls in flight by deployment (streams until their end)',
    labelNames: ['deployment'] as const,
  });

  /** Counts the request once its response is over, under the deployment that served it. */
  countRequestOnClose(res: ServerResponse): void {
    res.once('close', () => {
      const deployment = res.getHeader('x-aob-deployment');
      this.requests.inc({
        deployment: typeof deployment === 'string' ? deployment : 'none',
        status: res.writableFinished ? String(res.statusCode) : '499',
      });
    });
  }
}
