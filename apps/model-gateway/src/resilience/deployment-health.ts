import {
  type BulkheadPolicy,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  handleWhen,
  type RetryPolicy,
  retry,
  type TimeoutPolicy,
  TimeoutStrategy,
  timeout,
} from 'cockatiel';
import type { Catalog, Deployment } from '../catalog/catalog.schema';
import type { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { isUpstreamError } from '../providers/upstream-error';

/** Weight of the newest sample in the moving average of time to first token. */
const EWMA_ALPHA = 0.3;

/**
 * The live state of one deployment and its resilience policies (cockatiel): a consecutive-failure
 * circuit breaker, a bulkhead of `maxConcurrency` slots without a queue (a full deployment sends
 * the request to the next candidate at once), a timeout per attempt, and retries with full-jitter
 * exponential backoff that wait at least what the upstream's `Retry-After` asks for.
 */
export class DeploymentHealth {
  readonly breaker: CircuitBreakerPolicy;
  readonly bulkhead: BulkheadPolicy;
  readonly timeout: TimeoutPolicy;
  readonly retry: RetryPolicy;
  private ewmaTtftMs: number | undefined;
  private openedAt = 0;
  private probeFailures = 0;
  private probeUp = true;
  /** Slots handed out and not yet released (the bulkhead frees its own count a tick later). */
  private held = 0;

  constructor(
    readonly deployment: Deployment,
    private readonly metrics: ModelGatewayMetrics,
  ) {
    const name = deployment.name;
    const { consecutiveFailures, halfOpenAfterMs } = deployment.circuitBreaker;
    this.breaker = circuitBreaker(
      handleWhen((err) => isUpstreamError(err) && err.countsAgainstDeployment),
      { halfOpenAfter: halfOpenAfterMs, breaker: new ConsecutiveBreaker(consecutiveFailures) },
    );
    this.breaker.onBreak(() => {
      this.openedAt = Date.now();
    });
    this.breaker.onStateChange((state) =>
      metrics.circuitState.set({ deployment: name }, gaugeValue(state)),
    );
    metrics.circuitState.set({ deployment: name }, 0);
    metrics.deploymentUp.set({ deployment: name }, 1);
    metrics.inFlight.set({ deployment: name }, 0);

    this.bulkhead = bulkhead(deployment.maxConcurrency, 0);
    // Aggressive: the attempt is given up at the deadline even if the upstream ignores the abort;
    // abortOnReturn false: a stream returned before the deadline keeps flowing
    this.timeout = timeout(deployment.timeoutMs, {
      strategy: TimeoutStrategy.Aggressive,
      abortOnReturn: false,
    });

    const { maxRetries, baseDelayMs, maxDelayMs } = deployment.retry;
    this.retry = retry(
      handleWhen(
        (err) =>
          isUpstreamError(err) &&
          err.retryable &&
          // a longer wait than we are willing to make: better to try another deployment now
          (err.retryAfterMs === undefined || err.retryAfterMs <= maxDelayMs),
      ),
      {
        maxAttempts: maxRetries,
        backoff: new DelegateBackoff((ctx) => {
          const err = 'error' in ctx.result ? ctx.result.error : undefined;
          const jittered =
            Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (ctx.attempt - 1));
          const asked = isUpstreamError(err) ? err.retryAfterMs : undefined;
          return asked === undefined ? jittered : Math.max(asked, jittered);
        }),
      },
    );
    this.retry.onRetry(() => metrics.retries.inc({ deployment: name }));
  }

  get name(): string {
    return this.deployment.name;
  }

  get circuit(): CircuitState {
    return this.breaker.state;
  }

  /** Calls in flight (bulkhead slots taken). */
  get inFlight(): number {
    return this.held;
  }

  /** in-flight / maxConcurrency, the `least-busy` ranking. */
  get load(): number {
    return this.inFlight / this.deployment.maxConcurrency;
  }

  /** EWMA of time to first token (streams) or to the answer (batch); undefined before the first success. */
  get ttftMs(): number | undefined {
    return this.ewmaTtftMs;
  }

  /** Whether a probe found the upstream alive (always true without probes). */
  get up(): boolean {
    return this.probeUp;
  }

  /**
   * Whether routing may send a request here: alive, and the circuit closed, half-open, or open
   * long enough that the next call is the half-open test.
   */
  get routable(): boolean {
    if (!this.probeUp) return false;
    if (this.breaker.state !== CircuitState.Open) return true;
    return Date.now() - this.openedAt >= this.deployment.circuitBreaker.halfOpenAfterMs;
  }

  recordLatency(ms: number, mode: 'stream' | 'batch'): void {
    this.ewmaTtftMs =
      this.ewmaTtftMs === undefined ? ms : EWMA_ALPHA * ms + (1 - EWMA_ALPHA) * this.ewmaTtftMs;
    this.metrics.upstreamLatency.observe({ deployment: this.name, mode }, ms / 1000);
  }

  /**
   * Takes a bulkhead slot, held until `release()` (for a stream: until it ends).
   * @throws BulkheadRejectedError when all `maxConcurrency` slots are taken
   */
  acquire(): Promise<() => void> {
    return new Promise((resolve, reject) => {
      this.bulkhead
        .execute(
          () =>
            new Promise<void>((release) => {
              this.metrics.inFlight.set({ deployment: this.name }, ++this.held);
              let released = false;
              resolve(() => {
                if (released) return;
                released = true;
                this.metrics.inFlight.set({ deployment: this.name }, --this.held);
                release();
              });
            }),
        )
        .catch(reject);
    });
  }

  /** A failure after the breaker let the call through (a stream that broke midway). */
  recordFailure(err: unknown): void {
    if (this.breaker.state !== CircuitState.Closed) return;
    this.breaker
      .execute(() => {
        throw err;
      })
      .catch(() => undefined);
  }

  /** Result of one background probe. */
  recordProbe(alive: boolean): void {
    if (alive) {
      this.probeFailures = 0;
      this.probeUp = true;
    } else if (++this.probeFailures >= this.unhealthyAfter) {
      this.probeUp = false;
    }
    this.metrics.deploymentUp.set({ deployment: this.name }, this.probeUp ? 1 : 0);
  }

  private get unhealthyAfter(): number {
    const check = this.deployment.healthCheck;
    return check === false ? 1 : check.unhealthyAfter;
  }
}

/** 0 closed, 1 open, 2 half-open (cockatiel's isolated state counts as open). */
function gaugeValue(state: CircuitState): number {
  switch (state) {
    case CircuitState.Closed:
      return 0;
    case CircuitState.HalfOpen:
      return 2;
    default:
      return 1;
  }
}

/** The `DeploymentHealth` of every catalog deployment. */
export class DeploymentHealthRegistry {
  private readonly byName = new Map<string, DeploymentHealth>();

  constructor(catalog: Catalog, metrics: ModelGatewayMetrics) {
    for (const d of catalog.deployments) this.byName.set(d.name, new DeploymentHealth(d, metrics));
  }

  of(deployment: Deployment): DeploymentHealth {
    const health = this.byName.get(deployment.name);
    if (!health) throw new Error(`no health state for deployment ${deployment.name}`);
    return health;
  }

  all(): DeploymentHealth[] {
    return [...this.byName.values()];
  }
}
