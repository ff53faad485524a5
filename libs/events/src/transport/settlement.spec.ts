import { DomainError } from '@aob/errors';
import { retryDelayMs, settlementFor } from './settlement';

const policy = { retryBaseMs: 1_000, retryMaxMs: 60_000 };
const first = { deliveryCount: 1, maxDeliver: 5 };
const last = { deliveryCount: 5, maxDeliver: 5 };

describe('settlementFor', () => {
  it('acks success', () => {
    expect(settlementFor({ ok: true }, last, policy)).toEqual({ action: 'ack' });
  });

  it('terms poison at once, whatever the delivery', () => {
    const error = new DomainError('InvalidEvent', 'not a CloudEvent', { retryable: true });
    expect(settlementFor({ ok: false, error, poison: true }, first, policy)).toEqual({
      action: 'term',
      code: 'InvalidEvent',
      reason: 'not a CloudEvent',
    });
  });

  it('terms a non-retryable DomainError on the first delivery', () => {
    const error = new DomainError('UnknownAgent', 'no agent "x"');
    expect(settlementFor({ ok: false, error }, first, policy)).toEqual({
      action: 'term',
      code: 'UnknownAgent',
      reason: 'no agent "x"',
    });
  });

  it('naks retryable DomainErrors and plain errors with backoff', () => {
    const retryable = new DomainError('Unavailable', 'down', { retryable: true });
    expect(settlementFor({ ok: false, error: retryable }, first, policy, () => 0.5)).toEqual({
      action: 'nak',
      delayMs: 500,
    });
    expect(
      settlementFor(
        { ok: false, error: new Error('boom') },
        { deliveryCount: 3, maxDeliver: 5 },
        policy,
        () => 0.5,
      ),
    ).toEqual({ action: 'nak', delayMs: 2_000 });
    // Nest's default exception filter hands over a plain object: still retried.
    expect(
      settlementFor(
        { ok: false, error: { status: 'error', message: 'Internal server error' } },
        first,
        policy,
        () => 0.1,
      ).action,
    ).toBe('nak');
  });

  it('honours details.retryAfterMs', () => {
    const error = new DomainError('QuotaExceeded', 'slow down', {
      retryable: true,
      details: { retryAfterMs: 12_345 },
    });
    expect(settlementFor({ ok: false, error }, first, policy, () => 0)).toEqual({
      action: 'nak',
      delayMs: 12_345,
    });
  });

  it('terms a retryable failure on the last delivery, saying so', () => {
    expect(settlementFor({ ok: false, error: new Error('still down') }, last, policy)).toEqual({
      action: 'term',
      code: 'Internal',
      reason: 'gave up after 5 deliveries: still down',
    });
  });

  it('never gives up when max_deliver is unlimited', () => {
    expect(
      settlementFor(
        { ok: false, error: new Error('x') },
        { deliveryCount: 1_000, maxDeliver: -1 },
        policy,
      ).action,
    ).toBe('nak');
  });
});

describe('retryDelayMs (exponential, full jitter)', () => {
  it('doubles the ceiling per delivery up to the cap', () => {
    const top = (n: number) => retryDelayMs(n, policy, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(top)).toEqual([
      999, 1_999, 3_999, 7_999, 15_999, 31_999, 59_999, 59_999,
    ]);
  });
  it('spreads delays over [0, ceiling)', () => {
    expect(retryDelayMs(3, policy, () => 0)).toBe(0);
    const samples = Array.from({ length: 500 }, () => retryDelayMs(3, policy));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(4_000);
    expect(new Set(samples).size).toBeGreaterThan(100);
  });
});
