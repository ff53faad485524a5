import { DomainError } from '@aob/errors';
import { decodeCursor, encodeCursor } from './page-cursor';

describe('page cursor', () => {
  it('round-trips a position with microseconds', () => {
    const c = { createdAt: '2025-11-22T01:02:03.123456Z', id: 'run-1' };
    const raw = encodeCursor(c);
    expect(raw).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(raw)).toEqual(c);
  });

  it.each([
    ['not base64url', '***'],
    ['not JSON', Buffer.from('nope').toString('base64url')],
    ['wrong shape', Buffer.from(JSON.stringify({ a: 1 })).toString('base64url')],
    ['bad timestamp', Buffer.from(JSON.stringify(['yesterday', 'x'])).toString('base64url')],
    [
      'empty id',
      Buffer.from(JSON.stringify(['2025-11-22T01:02:03.123456Z', ''])).toString('base64url'),
    ],
  ])('rejects %s with a 400 DomainError', (_, raw) => {
    expect(() => decodeCursor(raw)).toThrow(DomainError);
    try {
      decodeCursor(raw);
    } catch (err) {
      expect((err as DomainError).code).toBe('InvalidRequest');
    }
  });
});
