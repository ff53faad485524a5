import { canonicalJson, requestHash } from './canonical-json';

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('drops undefined members like JSON.stringify does', () => {
    expect(canonicalJson({ a: undefined, b: 'x' })).toBe('{"b":"x"}');
  });

  it('hashes bodies that differ only in key order to the same value, and different bodies differently', () => {
    const h1 = requestHash({ agent: 'echo', input: { message: 'hi', delayMs: 1 } });
    const h2 = requestHash({ input: { delayMs: 1, message: 'hi' }, agent: 'echo' });
    const h3 = requestHash({ agent: 'echo', input: { message: 'hi!', delayMs: 1 } });
    expect(h1).toBe(h2);
    expect(h1).not.toBe(h3);
    expect(h1).toMatch(/^[0-9a-f]{64}$/);
  });
});
