import type { Redis } from 'ioredis';
import { counter } from '@aob/observability';
import { billingPeriod, type BillingPeriod } from './billing-period';
import { QUOTA_FIELDS, type QuotaLimits, type QuotaOverrides } from './quota-limits';
import { ADMIT_SCRIPT, RECORD_SPEND_SCRIPT, REFUND_SCRIPT, SETTLE_SCRIPT } from './quota-scripts';

/** Where overrides and committed spend live (Postgres; see QuotaRepository). */
export interface QuotaStore {
  findOverrides(tenantId: string): Promise<QuotaOverrides | null>;
  /** Committed cost of the tenant in the period, from the metering aggregates. */
  monthSpendUsd(tenantId: string, period: BillingPeriod): Promise<number>;
}

/** A budget threshold crossed for the first time in a period. */
export interface BudgetNotification {
  kind: 'warning' | 'exceeded';
  tenantId: string;
  period: string;
  spendUsd: number;
  budgetUsd: number;
  /** The fraction of the budget that triggered it (1 for exceeded). */
  threshold: number;
}

export interface QuotaLimiterOptions {
  store: QuotaStore;
  /** Limits of tenants without overrides (0 = unlimited). */
  defaults: QuotaLimits;
  /** Key prefix: keys are `<prefix>:q:{<tenant>}:...`. @default 'aob' */
  keyPrefix?: string;
  /** Redis (or the store) failed: `open` admits, `closed` refuses. @default 'open' */
  failMode?: 'open' | 'closed';
  /** @default 60 */
  limitsCacheSeconds?: number;
  /** The spend counter expires (and is rebuilt from the store) this often. @default 300 */
  spendResyncSeconds?: number;
  /** @default 0.8 */
  warnFraction?: number;
  /**
   * Publishes a budget notification (warning at warnFraction, exceeded at 100 %), at most once per
   * tenant per period across all replicas. If it throws, the once-flag is cleared so a later check
   * tries again. Called off the request path.
   */
  onNotification?: (n: BudgetNotification) => Promise<unknown>;
  /** @default console-free no-op */
  logger?: { warn(message: string): void };
  /** Clock for the billing period only (buckets use Redis server time). @default Date.now */
  now?: () => number;
  /**
   * Lifetime of a lease (QUOTA_LEASE_MS): admissions that ask for one (`lease: true`) are served
   * from a local allowance taken from the tenant's buckets while it lasts. 0 = every admission
   * is one round trip. Leases are handed out only while `followInvalidations` is connected.
   * @default 0
   */
  leaseMs?: number;
  /** Largest share of a bucket's capacity one lease may hold. @default 0.1 */
  leaseMaxShare?: number;
}

export interface BucketState {
  /** Capacity: burst for requests, tokensPerMinute for tokens. */
  limit: number;
  /** What may be taken now (floored at 0; the bucket itself may be in debt). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

/** Tokens held for one model request; settle it with the real usage. */
export interface TokenReservation {
  tenantId: string;
  tokens: number;
  /** The limit in force when reserved (the settle refills at this rate). */
  tokensPerMinute: number;
  /** The lease it was reserved from: while that lease lives, the settlement goes back to it. */
  lease?: object;
}

export type QuotaRejection = 'requests' | 'tokens' | 'too-large' | 'budget' | 'unavailable';

export interface QuotaDecision {
  allowed: boolean;
  reason?: QuotaRejection;
  /** When a retry may succeed (requests/tokens rejections, fail-closed). */
  retryAfterMs?: number;
  limits: QuotaLimits;
  /** Undefined when requests are unlimited (or the state is unknown). */
  requests?: BucketState;
  /** Undefined when tokens are unlimited (or the state is unknown). */
  tokens?: BucketState;
  /** Undefined when the budget is unlimited (or the state is unknown). */
  budget?: { limitUsd: number; spentUsd: number; remainingUsd: number };
  /** Present when tokens were reserved: settle it after the model call. */
  reservation?: TokenReservation;
  /** Served from a local lease, without a round trip (the bucket states are the lease's view). */
  leased?: boolean;
  /** Redis or the store failed; the fail mode decided. */
  degraded?: boolean;
}

export interface AdmitOptions {
  /** Request bucket to take from (`runs` at the gateway, `models` at the model gateway). @default 'runs' */
  scope?: string;
  /** Requests to take. @default 1 */
  requests?: number;
  /** Worst-case tokens to reserve (prompt estimate + max_tokens). @default 0 */
  tokens?: number;
  /**
   * May be served from (and may take) a local lease of the tenant's quota (see
   * QuotaLimiterOptions.leaseMs): for callers with many small admissions per tenant.
   */
  lease?: boolean;
}

/**
 * A local allowance of one tenant's bucket pair (one scope), taken from Redis by an admission
 * and handed out without round trips until it expires, runs out or is invalidated; what is left
 * then goes back (`retire`).
 */
interface Lease {
  key: string;
  tenantId: string;
  scope: string;
  /** performance.now() after which the lease hands out nothing. */
  expiresAt: number;
  /** Requests left to hand out (Infinity: requests unlimited). */
  requests: number;
  /** Tokens left to hand out (Infinity: tokens unlimited); settlements add to it, may go negative. */
  tokens: number;
  /** The admission that took the lease: limits, and the buckets as Redis left them. */
  base: QuotaDecision;
  /** Handed out so far: the size of the next lease follows the demand. */
  admitted: number;
  tokensHandedOut: number;
  retired: boolean;
}

/** Ask for no lease on a bucket that cannot give one; start with this many requests. */
const FIRST_LEASE_REQUESTS = 4;

type AdmitReply = string[];
interface Granted {
  requests: number;
  tokens: number;
}
type SpendReply = string[];

interface QuotaCommands {
  aobQuotaAdmit(...args: (string | number)[]): Promise<AdmitReply>;
  aobQuotaSettle(...args: (string | number)[]): Promise<string>;
  aobQuotaSpend(...args: (string | number)[]): Promise<SpendReply>;
  aobQuotaRefund(...args: (string | number)[]): Promise<string>;
}

const failures = () =>
  counter({
    name: 'aob_quota_backend_failures_total',
    help: 'Quota checks whose Redis or Postgres call failed (decided by QUOTA_FAIL_MODE)',
    labelNames: ['op', 'mode'] as const,
  });
const checks = () =>
  counter({
    name: 'aob_quota_checks_total',
    help: 'Quota admissions by outcome',
    labelNames: ['scope', 'outcome'] as const,
  });
const leaseOps = () =>
  counter({
    name: 'aob_quota_leases_total',
    help: 'Quota leases (QUOTA_LEASE_MS): admissions served locally (hit), leases taken (taken) and returned after use (retired), returns that failed (refund_failed)',
    labelNames: ['scope', 'event'] as const,
  });
const notifications = () =>
  counter({
    name: 'aob_quota_budget_notifications_total',
    help: 'Budget warning/exceeded notifications by outcome',
    labelNames: ['kind', 'outcome'] as const,
  });

const FLAG_TTL_SECONDS = 40 * 24 * 3600;
const LOG_EVERY_MS = 10_000;

/**
 * Per-tenant quotas shared by every replica through Redis/Dragonfly: a request token bucket, a
 * tokens-per-minute bucket with reserve → settle, and the month's budget. Each check is one Lua
 * script (one round trip) on the server's clock; the tenant's overrides and the month's spend are
 * loaded from the store only when missing from Redis.
 */
export class QuotaLimiter {
  private readonly redis: Redis & QuotaCommands;
  private readonly prefix: string;
  private readonly failMode: 'open' | 'closed';
  private readonly cacheSeconds: number;
  private readonly resyncSeconds: number;
  private readonly warnFraction: number;
  private readonly now: () => number;
  private readonly failed = failures();
  private readonly checked = checks();
  private readonly notified = notifications();
  private lastLog = 0;
  private readonly leaseMs: number;
  private readonly leaseMaxShare: number;
  private readonly leases = new Map<string, Lease>();
  /** One lease renewal per tenant and scope at a time; the others wait for its lease. */
  private readonly renewing = new Map<string, Promise<unknown>>();
  /** What the last retired lease handed out, per tenant and scope: the next one's size. */
  private readonly demand = new Map<string, { requests: number; tokens: number; at: number }>();
  private invalidationsLive = false;
  /** Bumped by every invalidation: a renewal sent before one must not take a lease. */
  private invalidations = 0;
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly leaseEvents = leaseOps();

  constructor(
    redis: Redis,
    private readonly opts: QuotaLimiterOptions,
  ) {
    const r = redis as Redis & Partial<QuotaCommands>;
    if (typeof r.aobQuotaAdmit !== 'function') {
      redis.defineCommand('aobQuotaAdmit', { numberOfKeys: 6, lua: ADMIT_SCRIPT });
      redis.defineCommand('aobQuotaSettle', { numberOfKeys: 1, lua: SETTLE_SCRIPT });
      redis.defineCommand('aobQuotaSpend', { numberOfKeys: 4, lua: RECORD_SPEND_SCRIPT });
    }
    if (typeof r.aobQuotaRefund !== 'function') {
      redis.defineCommand('aobQuotaRefund', { numberOfKeys: 2, lua: REFUND_SCRIPT });
    }
    this.redis = redis as Redis & QuotaCommands;
    this.prefix = opts.keyPrefix ?? 'aob';
    this.failMode = opts.failMode ?? 'open';
    this.cacheSeconds = opts.limitsCacheSeconds ?? 60;
    this.resyncSeconds = opts.spendResyncSeconds ?? 300;
    this.warnFraction = opts.warnFraction ?? 0.8;
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? 0;
    this.leaseMaxShare = opts.leaseMaxShare ?? 0.1;
  }

  /**
   * Turns leases on (when leaseMs > 0) for as long as `subscriber` — a Redis connection of its
   * own, in subscriber mode — listens to the invalidation channel: a PUT of a tenant's limits
   * (invalidateLimits, on any replica) then retires that tenant's leases here at once. While the
   * subscriber is disconnected every admission makes its round trip.
   */
  async followInvalidations(subscriber: Redis): Promise<void> {
    if (this.leaseMs <= 0) return;
    const channel = this.invalidationChannel();
    subscriber.on('message', (ch: string, tenantId: string) => {
      if (ch === channel) this.retireTenant(tenantId);
    });
    const subscribe = () =>
      subscriber.subscribe(channel).then(
        () => (this.invalidationsLive = !this.closed),
        () => undefined,
      );
    subscriber.on('ready', () => void subscribe());
    subscriber.on('close', () => {
      this.invalidationsLive = false;
      this.retireAll();
    });
    if (subscriber.status === 'ready') await subscribe();
    this.sweeper ??= setInterval(() => this.retireExpired(), this.leaseMs);
    this.sweeper.unref();
  }

  /** Returns every lease's remainder and stops leasing (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    this.invalidationsLive = false;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.all([...this.leases.values()].map((l) => this.retire(l)));
  }

  /** Redis keys of a tenant: one hash slot per tenant (`{tenant}`). */
  keys(tenantId: string, period: string, scope = 'runs') {
    const base = `${this.prefix}:q:{${tenantId}}`;
    return {
      limits: `${base}:limits`,
      requests: `${base}:rq:${scope}`,
      tokens: `${base}:tk`,
      spend: `${base}:spend:${period}`,
      warned: `${base}:flag:${period}:warn`,
      exceeded: `${base}:flag:${period}:exceeded`,
    };
  }

  /**
   * Checks the budget, takes `requests` from the scope's bucket and reserves `tokens`, all or
   * nothing. Never throws: a Redis/store failure answers by the fail mode (`degraded: true`).
   */
  async admit(tenantId: string, opts: AdmitOptions = {}): Promise<QuotaDecision> {
    const scope = opts.scope ?? 'runs';
    const requests = opts.requests ?? 1;
    const tokens = Math.ceil(opts.tokens ?? 0);
    const decision =
      opts.lease && requests === 1 && this.leaseMs > 0 && this.invalidationsLive
        ? await this.leasedAdmit(tenantId, scope, tokens)
        : (await this.run(tenantId, scope, requests, tokens, false)).decision;
    this.checked.inc({
      scope,
      outcome: decision.degraded ? `degraded-${this.failMode}` : (decision.reason ?? 'allowed'),
    });
    return decision;
  }

  /** Limits and what remains, changing nothing (GET /v1/quotas). */
  async peek(tenantId: string, scope = 'runs'): Promise<QuotaDecision> {
    return (await this.run(tenantId, scope, 0, 0, true)).decision;
  }

  /**
   * Settles a reservation to the real usage: the difference goes back to the bucket (or, when the
   * request used more than reserved, is taken too). Failures are logged and counted, never thrown:
   * the bucket refills by itself.
   */
  async settle(reservation: TokenReservation, actualTokens: number): Promise<void> {
    const delta = reservation.tokens - Math.max(0, Math.ceil(actualTokens));
    if (delta === 0 || reservation.tokensPerMinute <= 0) return;
    const lease = reservation.lease as Lease | undefined;
    if (lease && !lease.retired) {
      lease.tokens += delta; // goes back to Redis with the rest of the lease
      return;
    }
    const key = this.keys(reservation.tenantId, '-').tokens;
    try {
      await this.redis.aobQuotaSettle(key, reservation.tokensPerMinute, delta);
    } catch (err) {
      this.failure('settle', err);
    }
  }

  /**
   * Adds committed cost to the tenant's spend counter of `period` (metering, after each batch
   * commit) and publishes budget notifications that became due. A missing counter is rebuilt from
   * the store, which already includes this cost. Throws on Redis/store failure (the caller logs it:
   * the counter resyncs from Postgres within spendResyncSeconds).
   */
  async recordSpend(tenantId: string, period: BillingPeriod, amountUsd: number): Promise<void> {
    const k = this.keys(tenantId, period.id);
    const args = (amount: number) =>
      [
        k.limits,
        k.spend,
        k.warned,
        k.exceeded,
        amount,
        this.opts.defaults.monthlyBudgetUsd,
        FLAG_TTL_SECONDS,
        this.warnFraction,
      ] as const;
    let amount = amountUsd;
    for (let attempt = 0; attempt < 4; attempt++) {
      const reply = await this.redis.aobQuotaSpend(...args(amount));
      if (reply[0] === 'L') {
        await this.cacheLimits(tenantId);
        continue;
      }
      if (reply[0] === 'S') {
        await this.rebuildSpend(tenantId, period, k.spend);
        amount = 0; // the rebuilt value already holds this cost
        continue;
      }
      const spend = Number(reply[1]);
      const budget = Number(reply[3]);
      this.dispatch(tenantId, period.id, reply[2] ?? '', spend, budget);
      return;
    }
    throw new Error(`quota state of tenant ${tenantId} kept changing while recording spend`);
  }

  /** Drops the cached overrides (after a PUT): every replica reloads them on its next check. */
  async invalidateLimits(tenantId: string): Promise<void> {
    await this.redis.del(this.keys(tenantId, '-').limits);
    this.retireTenant(tenantId);
    // every replica's leases of the tenant end now (followInvalidations)
    await this.redis.publish(this.invalidationChannel(), tenantId);
  }

  private invalidationChannel(): string {
    return `${this.prefix}:q:invalidate`;
  }

  /**
   * One admission through the tenant's lease: handed out locally while the lease lasts; else one
   * round trip admits the request and takes the next lease, sized after the demand the last one
   * saw (a tenant that calls rarely gets none: every call of it is exact). Concurrent admissions
   * of a tenant wait for the renewal in flight instead of each making one.
   */
  private async leasedAdmit(
    tenantId: string,
    scope: string,
    tokens: number,
  ): Promise<QuotaDecision> {
    const key = `${tenantId}\u0000${scope}`;
    for (;;) {
      const lease = this.leases.get(key);
      if (lease) {
        const local = this.handOut(lease, tokens);
        if (local) return local;
      }
      const pending = this.renewing.get(key);
      if (!pending) break;
      await pending;
      if (!this.leases.get(key)) break; // the renewal took no lease: ours goes to Redis
    }
    // an expired or spent lease gives its rest back before the next one is taken
    const stale = this.leases.get(key);
    const generation = this.invalidations;
    const renewal = this.retire(stale).then(() =>
      this.run(tenantId, scope, 1, tokens, false, this.leaseAsk(key, tokens)),
    );
    this.renewing.set(key, renewal);
    try {
      const { decision, granted } = await renewal;
      // a limit change seen meanwhile may have come after Redis answered with the old limits
      const current = generation === this.invalidations && this.invalidationsLive;
      if (decision.allowed && !decision.degraded && granted) {
        if (current) this.takeLease(key, tenantId, scope, decision, granted);
        else void this.refund(tenantId, scope, decision.limits, granted.requests, granted.tokens);
      }
      return decision;
    } finally {
      this.renewing.delete(key);
    }
  }

  /** How much the next lease of `key` asks for: twice what the last one handed out, if recent. */
  private leaseAsk(key: string, tokens: number): Granted {
    const d = this.demand.get(key);
    // demand seen within the last two lease lifetimes; a rare caller asks for nothing
    if (!d || performance.now() - d.at > 2 * this.leaseMs) return { requests: 0, tokens: 0 };
    const requests = Math.max(FIRST_LEASE_REQUESTS, 2 * d.requests);
    return { requests, tokens: Math.max(requests * tokens, 2 * d.tokens) };
  }

  private takeLease(
    key: string,
    tenantId: string,
    scope: string,
    base: QuotaDecision,
    granted: Granted,
  ): void {
    const l = base.limits;
    const lease: Lease = {
      key,
      tenantId,
      scope,
      expiresAt: performance.now() + this.leaseMs,
      requests: l.requestsPerSecond > 0 ? granted.requests : Infinity,
      tokens: l.tokensPerMinute > 0 ? granted.tokens : Infinity,
      base,
      admitted: 0,
      tokensHandedOut: 0,
      retired: false,
    };
    // nothing to hand out (a first call, or small limits): the grant goes back, the demand is noted
    if (lease.requests < 1) {
      void this.retire(lease);
      return;
    }
    void this.retire(this.leases.get(key));
    this.leases.set(key, lease);
    this.leaseEvents.inc({ scope, event: 'taken' });
  }

  /** One admission from a live lease, or undefined when it cannot give one. */
  private handOut(lease: Lease, tokens: number): QuotaDecision | undefined {
    if (lease.retired || performance.now() >= lease.expiresAt) return undefined;
    if (lease.requests < 1 || lease.tokens < tokens) return undefined;
    lease.requests -= 1;
    lease.tokens -= tokens;
    lease.admitted += 1;
    lease.tokensHandedOut += tokens;
    this.leaseEvents.inc({ scope: lease.scope, event: 'hit' });
    const { base } = lease;
    const limits = base.limits;
    const decision: QuotaDecision = { allowed: true, limits, leased: true };
    // what this tenant may still take: Redis's buckets plus what the lease holds
    if (base.requests) {
      decision.requests = {
        ...base.requests,
        remaining: base.requests.remaining + Math.floor(lease.requests),
      };
    }
    if (base.tokens) {
      decision.tokens = {
        ...base.tokens,
        remaining: base.tokens.remaining + Math.max(0, Math.floor(lease.tokens)),
      };
      if (tokens > 0) {
        decision.reservation = {
          tenantId: lease.tenantId,
          tokens,
          tokensPerMinute: limits.tokensPerMinute,
          lease,
        };
      }
    }
    if (base.budget) decision.budget = base.budget;
    return decision;
  }

  /** Ends a lease: what it did not hand out (and what settlements gave back) returns to Redis. */
  private async retire(lease: Lease | undefined): Promise<void> {
    if (!lease || lease.retired) return;
    lease.retired = true;
    if (this.leases.get(lease.key) === lease) this.leases.delete(lease.key);
    this.demand.set(lease.key, {
      requests: lease.admitted,
      tokens: lease.tokensHandedOut,
      at: performance.now(),
    });
    if (lease.admitted > 0) this.leaseEvents.inc({ scope: lease.scope, event: 'retired' });
    const requests = Number.isFinite(lease.requests) ? Math.floor(lease.requests) : 0;
    const tokens = Number.isFinite(lease.tokens) ? Math.round(lease.tokens) : 0;
    await this.refund(lease.tenantId, lease.scope, lease.base.limits, requests, tokens);
  }

  /** Gives requests and tokens back to a tenant's buckets (limits: those they were taken under). */
  private async refund(
    tenantId: string,
    scope: string,
    l: QuotaLimits,
    requests: number,
    tokens: number,
  ): Promise<void> {
    if (requests <= 0 && tokens === 0) return;
    const k = this.keys(tenantId, '-', scope);
    try {
      await this.redis.aobQuotaRefund(
        k.requests,
        k.tokens,
        l.requestsPerSecond,
        l.burst,
        l.tokensPerMinute,
        requests,
        tokens,
      );
    } catch (err) {
      // the buckets refill by themselves; what the lease held is lost for a while, not more
      this.leaseEvents.inc({ scope, event: 'refund_failed' });
      this.failure('refund', err);
    }
  }

  private retireTenant(tenantId: string): void {
    this.invalidations++;
    for (const lease of this.leases.values()) {
      if (lease.tenantId === tenantId) void this.retire(lease);
    }
  }

  private retireAll(): void {
    this.invalidations++;
    for (const lease of this.leases.values()) void this.retire(lease);
  }

  private retireExpired(): void {
    const now = performance.now();
    for (const lease of this.leases.values()) {
      if (now >= lease.expiresAt) void this.retire(lease);
    }
    for (const [key, d] of this.demand) {
      if (now - d.at > 2 * this.leaseMs) this.demand.delete(key);
    }
  }

  private async run(
    tenantId: string,
    scope: string,
    requests: number,
    tokens: number,
    peek: boolean,
    lease: Granted = { requests: 0, tokens: 0 },
  ): Promise<{ decision: QuotaDecision; granted?: Granted }> {
    const period = billingPeriod(new Date(this.now()));
    const k = this.keys(tenantId, period.id, scope);
    const d = this.opts.defaults;
    try {
      for (let attempt = 0; attempt < 4; attempt++) {
        const reply = await this.redis.aobQuotaAdmit(
          k.limits,
          k.requests,
          k.tokens,
          k.spend,
          k.warned,
          k.exceeded,
          d.requestsPerSecond,
          d.burst,
          d.tokensPerMinute,
          d.monthlyBudgetUsd,
          requests,
          tokens,
          FLAG_TTL_SECONDS,
          peek ? '1' : '0',
          this.warnFraction,
          lease.requests,
          lease.tokens,
          this.leaseMaxShare,
        );
        if (reply[0] === 'L') {
          await this.cacheLimits(tenantId);
          continue;
        }
        if (reply[0] === 'S') {
          await this.rebuildSpend(tenantId, period, k.spend);
          continue;
        }
        const decision = toDecision(tenantId, reply, tokens);
        if (reply[7])
          this.dispatch(
            tenantId,
            period.id,
            reply[7],
            decision.budget?.spentUsd ?? 0,
            decision.limits.monthlyBudgetUsd,
          );
        return {
          decision,
          granted: { requests: Number(reply[12] ?? 0), tokens: Number(reply[13] ?? 0) },
        };
      }
      throw new Error('quota state kept disappearing while checking');
    } catch (err) {
      this.failure(peek ? 'peek' : 'admit', err);
      const limits = { ...d };
      return {
        decision:
          this.failMode === 'open' || peek
            ? { allowed: true, limits, degraded: true }
            : {
                allowed: false,
                reason: 'unavailable',
                retryAfterMs: 1_000,
                limits,
                degraded: true,
              },
      };
    }
  }

  private async cacheLimits(tenantId: string): Promise<void> {
    const overrides = await this.opts.store.findOverrides(tenantId);
    const fields: (string | number)[] = ['loaded', '1'];
    for (const f of QUOTA_FIELDS) {
      const v = overrides?.[f];
      if (v !== null && v !== undefined) fields.push(FIELD_KEYS[f], v);
    }
    const key = this.keys(tenantId, '-').limits;
    await this.redis
      .multi()
      .del(key)
      .hset(key, ...fields)
      .expire(key, this.cacheSeconds)
      .exec();
  }

  private async rebuildSpend(tenantId: string, period: BillingPeriod, key: string): Promise<void> {
    const spend = await this.opts.store.monthSpendUsd(tenantId, period);
    // NX: a counter created meanwhile (and already incremented) wins; the TTL bounds any drift.
    await this.redis.set(key, spend.toFixed(10), 'EX', this.resyncSeconds, 'NX');
  }

  private dispatch(
    tenantId: string,
    period: string,
    flags: string,
    spendUsd: number,
    budgetUsd: number,
  ): void {
    const due: BudgetNotification[] = [];
    if (flags.includes('w'))
      due.push({
        kind: 'warning',
        tenantId,
        period,
        spendUsd,
        budgetUsd,
        threshold: this.warnFraction,
      });
    if (flags.includes('x'))
      due.push({ kind: 'exceeded', tenantId, period, spendUsd, budgetUsd, threshold: 1 });
    for (const n of due) void this.notify(n);
  }

  private async notify(n: BudgetNotification): Promise<void> {
    if (!this.opts.onNotification) return;
    try {
      await this.opts.onNotification(n);
      this.notified.inc({ kind: n.kind, outcome: 'published' });
    } catch (err) {
      this.notified.inc({ kind: n.kind, outcome: 'failed' });
      this.opts.logger?.warn(
        `budget ${n.kind} for ${n.tenantId} (${n.period}) not published, will retry on a later check: ${(err as Error).message}`,
      );
      const k = this.keys(n.tenantId, n.period);
      await this.redis.del(n.kind === 'warning' ? k.warned : k.exceeded).catch(() => undefined);
    }
  }

  private failure(op: string, err: unknown): void {
    this.failed.inc({ op, mode: this.failMode });
    const t = Date.now();
    if (t - this.lastLog >= LOG_EVERY_MS) {
      this.lastLog = t;
      this.opts.logger?.warn(
        `quota ${op} failed, failing ${this.failMode} (QUOTA_FAIL_MODE): ${(err as Error)?.message ?? String(err)}`,
      );
    }
  }
}

const FIELD_KEYS: Record<keyof QuotaLimits, string> = {
  requestsPerSecond: 'rps',
  burst: 'burst',
  tokensPerMinute: 'tpm',
  monthlyBudgetUsd: 'budget',
};

const REASONS: Record<string, QuotaRejection> = {
  R: 'requests',
  T: 'tokens',
  X: 'too-large',
  B: 'budget',
};

function toDecision(tenantId: string, r: AdmitReply, tokens: number): QuotaDecision {
  const num = (i: number) => Number(r[i]);
  const limits: QuotaLimits = {
    requestsPerSecond: num(8),
    burst: num(9),
    tokensPerMinute: num(10),
    monthlyBudgetUsd: num(11),
  };
  const status = r[0] ?? '';
  const decision: QuotaDecision = { allowed: status === 'OK', limits };
  const reason = REASONS[status];
  if (reason) decision.reason = reason;
  if (status === 'R' || status === 'T') decision.retryAfterMs = Math.ceil(num(1));
  if (limits.requestsPerSecond > 0) {
    decision.requests = {
      limit: limits.burst,
      remaining: Math.max(0, Math.floor(num(2))),
      resetMs: Math.ceil(num(3)),
    };
  }
  if (limits.tokensPerMinute > 0) {
    decision.tokens = {
      limit: limits.tokensPerMinute,
      remaining: Math.max(0, Math.floor(num(4))),
      resetMs: Math.ceil(num(5)),
    };
    if (decision.allowed && tokens > 0) {
      decision.reservation = { tenantId, tokens, tokensPerMinute: limits.tokensPerMinute };
    }
  }
  if (limits.monthlyBudgetUsd > 0) {
    const spent = num(6);
    decision.budget = {
      limitUsd: limits.monthlyBudgetUsd,
      spentUsd: spent,
      remainingUsd: Math.max(0, limits.monthlyBudgetUsd - spent),
    };
  }
  return decision;
}
