import { parseIdempotencyKey } from './idempotency-key';

describe('parseIdempotencyKey', () => {
  it('passes a printable key through and undefined when absent', () => {
    expect(parseIdempotencyKey('order-42 retry:1')).toBe('order-42 retry:1');
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
  });

  it.each(['', ' leading', 'x'.repeat(256), 'tab\there', 'é', 'new\nline'])('rejects %p', (key) => {
    expect(() => parseIdempotencyKey(key)).toThrow(/Idempotency-Key/);
  });

  it('accepts 255 characters', () => {
    expect(parseIdempotencyKey('k'.repeat(255))).toHaveLength(255);
  });
});
