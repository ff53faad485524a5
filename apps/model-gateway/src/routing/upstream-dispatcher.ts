import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import { isDomainError } from '@aob/errors';
import type { Deployment } from '../catalog/catalog.schema';
import type { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { upstreamFailed } from '../openai/openai-errors';
import type { Provider } from '../providers/provider';
import type { ProviderRegistry } from '../providers/provider-registry';
import { isUpstreamError, UpstreamError } from '../providers/upstream-error';
import type { DeploymentHealth, DeploymentHealthRegistry } from '../resilience/deployment-health';
import type { RoutePlan } from './router';

/** One upstream call, bound to an attempt's signal (aborted by the client leaving or the timeout). */
export type UpstreamCall<T> = (provider: Provider, signal: AbortSignal) => Promise<T>;

export interface Dispatched<T> {
  deployment: Deployment;
  health: DeploymentHealth;
  value: T;
  /** Time spent waiting on upstreams and backoffs, the part of the latency that is not overhead. */
  upstreamMs: number;
  /** Attempts made, over all deployments tried. */
  attempts: number;
  /**
   * Ends the call: frees the bulkhead slot and stops following the client's signal. Called by
   * the dispatcher for batch calls; a stream's owner calls it when the stream ends.
   */
  release(): void;
}

export interface DispatchOptions {
  /** Keep the bulkhead slot after the call resolved (streams: until `release()`). */
  hold: boolean;
  mode: 'stream' | 'batch';
  /** Told each deployment as it is tried (to bill an abandoned call to the right one). */
  onAttempt?: (deployment: Deployment) => void;
}

interface Failure {
  deployment: string;
  error: unknown;
}

/**
 * Runs one request over its route plan: per deployment, retries (with Retry-After) around the
 * circuit breaker, bulkhead and timeout of that deployment; then the next candidate. A request
 * error (400 from the upstream, or our own validation) stops at once: another deployment would
 * refuse it too. The client leaving aborts the attempt in flight and stops everything.
 */
export class UpstreamDispatcher {
  constructor(
    private readonly providers: ProviderRegistry,
    private readonly health: DeploymentHealthRegistry,
    private readonly metrics: ModelGatewayMetrics,
  ) {}

  /**
   * @throws DomainError: 400 (the upstream refused the request), 429 (rate limited everywhere,
   *   with Retry-After), 502 (upstream errors), 503 (nothing available), 504 (timeouts); or the
   *   client's abort error when it left
   */
  async dispatch<T>(
    plan: RoutePlan,
    call: UpstreamCall<T>,
    clientSignal: AbortSignal,
    opts: DispatchOptions,
  ): Promise<Dispatched<T>> {
    const failures: Failure[] = [];
    let upstreamMs = 0;
    let attempts = 0;
    for (const deployment of plan.candidates) {
      const health = this.health.of(deployment);
      const provider = this.providers.for(deployment);
      let lastEnd: number | undefined;
      try {
        const done = await health.retry.execute(async () => {
          clientSignal.throwIfAborted();
          const begin = performance.now();
          // the gap since the last attempt is the backoff: upstream time, not gateway time
          if (lastEnd !== undefined) upstreamMs += begin - lastEnd;
          attempts++;
          opts.onAttempt?.(deployment);
          try {
            return await this.attempt(health, provider, call, clientSignal, opts);
          } finally {
            lastEnd = performance.now();
            upstreamMs += lastEnd - begin;
          }
        });
        return { deployment, health, upstreamMs, attempts, ...done };
      } catch (err) {
        if (clientSignal.aborted) throw err;
        if (isDomainError(err)) throw err; // our own validation (e.g. the local model's 400)
        if (!(isUpstreamError(err) || isPolicyRefusal(err))) throw err;
        this.metrics.upstreamErrors.inc({ deployment: deployment.name, reason: reasonOf(err) });
        if (isUpstreamError(err) && err.failure === 'bad_request') {
          throw upstreamFailed(400, err.message, { code: 'upstream_bad_request' });
        }
        failures.push({ deployment: deployment.name, error: err });
        this.metrics.failovers.inc({ deployment: deployment.name });
      }
    }
    throw finalError(plan.requested, failures);
  }

  /** One attempt at one deployment: bulkhead slot, then breaker, then timeout. */
  private async attempt<T>(
    health: DeploymentHealth,
    provider: Provider,
    call: UpstreamCall<T>,
    clientSignal: AbortSignal,
    opts: DispatchOptions,
  ): Promise<{ value: T; release: () => void }> {
    const releaseSlot = await health.acquire();
    const ctl = new AbortController();
    const onClientAbort = () => ctl.abort(clientSignal.reason);
    clientSignal.addEventListener('abort', onClientAbort, { once: true });
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clientSignal.removeEventListener('abort', onClientAbort);
      releaseSlot();
    };
    const started = performance.now();
    try {
      const value = await health.breaker.execute(async () => {
        try {
          return await health.timeout.execute(({ signal: deadline }) => {
            const onDeadline = () => ctl.abort(new Error('upstream attempt timed out'));
            deadline.addEventListener('abort', onDeadline, { once: true });
            return call(provider, ctl.signal).finally(() =>
              deadline.removeEventListener('abort', onDeadline),
            );
          });
        } catch (err) {
          if (err instanceof TaskCancelledError && !clientSignal.aborted) {
            throw new UpstreamError(
              'timeout',
              `no answer from ${health.name} within ${health.deployment.timeoutMs} ms`,
              { cause: err },
            );
          }
          throw err;
        }
      });
      health.recordLatency(performance.now() - started, opts.mode);
      if (!opts.hold) release();
      return { value, release };
    } catch (err) {
      ctl.abort();
      release();
      throw err;
    }
  }
}

const isPolicyRefusal = (err: unknown) =>
  err instanceof BrokenCircuitError || err instanceof BulkheadRejectedError;

function reasonOf(err: unknown): string {
  if (err instanceof BrokenCircuitError) return 'circuit_open';
  if (err instanceof BulkheadRejectedError) return 'at_capacity';
  if (isUpstreamError(err)) return err.failure;
  return 'internal';
}

function describe(f: Failure): string {
  const err = f.error;
  if (err instanceof BrokenCircuitError) return `${f.deployment}: circuit open`;
  if (err instanceof BulkheadRejectedError) return `${f.deployment}: at maxConcurrency`;
  return `${f.deployment}: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * What the client hears when every candidate failed. The last real upstream answer decides
 * (rate limited → 429 with its Retry-After and x-ratelimit-*, timeout → 504, anything else → 502);
 * when no upstream was even tried, 429 if deployments were full, else 503.
 */
function finalError(requested: string, failures: Failure[]) {
  const message = `all deployments for "${requested}" failed: ${failures.map(describe).join('; ')}`;
  const upstream = failures
    .map((f) => f.error)
    .filter(isUpstreamError)
    .at(-1);
  if (upstream) {
    if (upstream.failure === 'rate_limited') {
      return upstreamFailed(429, message, {
        code: 'rate_limit_exceeded',
        retryAfterMs: upstream.retryAfterMs ?? 1_000,
        headers: upstream.rateLimit,
      });
    }
    if (upstream.failure === 'timeout')
      return upstreamFailed(504, message, { code: 'upstream_timeout' });
    if (upstream.failure === 'context_length') {
      return upstreamFailed(400, message, { code: 'context_length_exceeded' });
    }
    return upstreamFailed(502, message, { code: 'upstream_error' });
  }
  if (failures.length > 0 && failures.every((f) => f.error instanceof BulkheadRejectedError)) {
    return upstreamFailed(429, message, { code: 'deployment_at_capacity', retryAfterMs: 1_000 });
  }
  return upstreamFailed(503, message, { code: 'no_deployment_available', retryAfterMs: 1_000 });
}
