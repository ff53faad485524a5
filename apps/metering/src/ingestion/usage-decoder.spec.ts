import fc from 'fast-check';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { CloudEvent } from 'cloudevents';
import { encodeBinary, encodeStructured, EVENTS, type UsageRecord } from '@aob/events';
import { isCanonicalTimestamp, UsageDecoder } from './usage-decoder';

const SOURCE = 'aob://model-gateway';
const USAGE = EVENTS.meteringUsage.type;

const record = (over: Partial<Record<keyof UsageRecord, unknown>> = {}) => ({
  tenantId: 'acme',
  runId: 'run-1',
  agent: 'chat',
  model: 'sim-small',
  deployment: 'local-fast',
  promptTokens: 12,
  completionTokens: 5,
  costUsd: 0.000018,
  latencyMs: 10,
  at: '2026-11-22T04:29:06.123Z',
  ...over,
});

/** A message as EventPublisher sends it (binary mode), with extra attributes if given. */
function binary(data: unknown, attrs: Record<string, unknown> = {}) {
  const event = new CloudEvent<unknown>(
    {
      id: 'chatcmpl-1',
      source: SOURCE,
      type: USAGE,
      time: '2026-11-22T04:29:06.456Z',
      datacontenttype: 'application/json',
      tenantid: 'acme',
      data,
      ...attrs,
    },
    false,
  );
  return encodeBinary(event);
}

/** A decoder that has seen (and fully validated) SOURCE once, as after the first event. */
function warmDecoder(): UsageDecoder {
  const d = new UsageDecoder();
  expect(d.decode(binary(record())).kind).toBe('usage');
  return d;
}

describe('isCanonicalTimestamp', () => {
  it('accepts what Date#toISOString writes', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z') }),
        (d) => {
          if (Number.isNaN(d.getTime())) return;
          expect(isCanonicalTimestamp(d.toISOString())).toBe(true);
        },
      ),
    );
  });

  it('accepts nothing that is not such a timestamp', () => {
    const digit = fc.constantFrom(...'0123456789'.split(''));
    const candidate = fc
      .tuple(fc.array(digit, { minLength: 17, maxLength: 17 }), fc.constantFrom('Z', '+', 'z'))
      .map(([d, z]) => {
        const s = d.join('');
        return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(8, 10)}:${s.slice(10, 12)}:${s.slice(12, 14)}.${s.slice(14, 17)}${z}`;
      });
    fc.assert(
      fc.property(fc.oneof(candidate, fc.string()), (s) => {
        if (isCanonicalTimestamp(s)) expect(new Date(s).toISOString()).toBe(s);
      }),
      { numRuns: 5_000 },
    );
    for (const bad of [
      '2026-02-29T00:00:00.000Z',
      '2026-13-01T00:00:00.000Z',
      '2026-04-31T00:00:00.000Z',
      '2026-01-01T24:00:00.000Z',
      '2026-01-01T00:00:60.000Z',
      '2026-01-01T00:00:00.000+00:00',
      '0999-01-01T00:00:00.000Z',
    ])
      expect(isCanonicalTimestamp(bad)).toBe(false);
    expect(isCanonicalTimestamp('2024-02-29T23:59:59.999Z')).toBe(true);
  });
});

describe('UsageDecoder', () => {
  it('decodes what EventPublisher publishes on the lean path, to what the full decoder gives', () => {
    const d = warmDecoder();
    const msg = binary(record());
    const lean = d.decodeLean(msg);
    expect(lean).toEqual({
      kind: 'usage',
      id: 'chatcmpl-1',
      source: SOURCE,
      type: USAGE,
      tenantId: 'acme',
      record: record(),
    });
    expect(d.decodeFull(msg)).toEqual(lean);
  });

  it('leaves to the full decoder a source it has not validated yet', () => {
    expect(new UsageDecoder().decodeLean(binary(record()))).toBeUndefined();
  });

  it.each([
    [
      'a structured-mode event',
      () =>
        encodeStructured(
          new CloudEvent<unknown>({ id: 'x', source: SOURCE, type: USAGE, data: record() }, false),
        ),
    ],
    ['a percent-encoded attribute', () => binary(record(), { subject: 'with space' })],
    [
      'an attribute it does not know',
      () => binary(record(), { dataschema: 'https://example.com/s' }),
    ],
    ['a time that is not canonical', () => binary(record(), { time: '2026-11-22T04:29:06Z' })],
    [
      'another content type',
      () => binary(record(), { datacontenttype: 'application/cloudevents+json' }),
    ],
    ['data the cheap check doubts', () => binary(record({ promptTokens: 1.5 }))],
    [
      'another event type',
      () =>
        binary(
          { tenantId: 'acme', limit: 'x', window: 'y', observed: 1 },
          { type: EVENTS.quotaExceeded.type },
        ),
    ],
  ])('leaves %s to the full decoder', (_what, make) => {
    expect(warmDecoder().decodeLean(make())).toBeUndefined();
  });

  it('takes the lean path only where the full decoder agrees (random usage data)', () => {
    const d = warmDecoder();
    const field = fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.integer({ min: -3, max: 3 }),
      fc.constantFrom(2 ** 53, Number.MAX_SAFE_INTEGER, 1e300, 0.5, -0),
      fc.double(),
      fc.string(),
      fc.constantFrom('acme', 'run-1', 'chat', '*', 'BAD AGENT', '2026-11-22T04:29:06.123Z'),
    );
    const keys = [
      'tenantId',
      'runId',
      'agent',
      'requested',
      'model',
      'deployment',
      'promptTokens',
      'completionTokens',
      'costUsd',
      'latencyMs',
      'at',
    ] as const;
    fc.assert(
      fc.property(
        fc.subarray([...keys]),
        fc.array(field, { minLength: 11, maxLength: 11 }),
        (mutated, values) => {
          const over: Record<string, unknown> = {};
          mutated.forEach((k, i) => (over[k] = values[i]));
          const data = JSON.parse(JSON.stringify(record(over))) as unknown;
          const msg = binary(data);
          const lean = d.decodeLean(msg);
          if (lean !== undefined) expect(lean).toEqual(d.decodeFull(msg));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('gives a reason for each kind of poison', () => {
    const d = warmDecoder();
    const raw = binary(record());
    const notJson = { headers: raw.headers, data: new TextEncoder().encode('{"tenantId":') };
    expect(d.decode(notJson)).toMatchObject({
      kind: 'poison',
      code: 'InvalidEvent',
      reason: expect.stringContaining('not valid JSON'),
    });
    expect(d.decode(binary(record({ promptTokens: -1 })))).toMatchObject({
      kind: 'poison',
      id: 'chatcmpl-1',
      reason: expect.stringContaining('promptTokens'),
    });
    expect(d.decode(binary(record(), { type: 'com.example.unknown' }))).toMatchObject({
      kind: 'poison',
      reason: expect.stringContaining('unknown event type'),
    });
    const noHeaders = natsHeaders();
    noHeaders.set('ce-specversion', '1.0');
    expect(d.decode({ headers: noHeaders, data: new Uint8Array(0) })).toMatchObject({
      kind: 'poison',
      reason: expect.stringContaining('required attribute'),
    });
    expect(new UsageDecoder(10).decode(raw)).toMatchObject({
      kind: 'poison',
      code: 'PayloadTooLarge',
    });
  });

  it('acks the quota events without work', () => {
    const msg = binary(
      { tenantId: 'acme', limit: 'monthlyBudgetUsd', window: '2026-11', observed: 1.2 },
      { type: EVENTS.quotaExceeded.type },
    );
    expect(warmDecoder().decode(msg)).toMatchObject({
      kind: 'other',
      type: EVENTS.quotaExceeded.type,
    });
  });
});
