import fc from 'fast-check';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { MsgHdrsImpl } from '@nats-io/nats-core/internal';
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

/** The header block as the NATS client encodes it on the wire. */
const headerBlockOf = (msg: ReturnType<typeof binary>) =>
  (msg.headers as unknown as MsgHdrsImpl).toString();

/** A message as it crosses the wire: the NATS header block, then the payload. */
function wire(headerBlock: string, data: Uint8Array | string) {
  const head = new TextEncoder().encode(headerBlock);
  const body = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return { bytes, headerLength: head.length };
}

/**
 * decodeLeanRaw agrees with the decoded-header path: when it accepts the bytes, the NATS client
 * reads the same headers from them and both other paths decode the message to the same result.
 */
function expectAgreement(d: UsageDecoder, bytes: Uint8Array, headerLength: number) {
  const raw = d.decodeLeanRaw(bytes, headerLength);
  if (raw === undefined) return undefined;
  const received = {
    headers: MsgHdrsImpl.decode(bytes.subarray(0, headerLength)),
    data: bytes.subarray(headerLength),
  };
  expect(d.decodeLean(received)).toEqual(raw);
  expect(d.decodeFull(received)).toEqual(raw);
  return raw;
}

describe('UsageDecoder.decodeLeanRaw (the bytes as received)', () => {
  const lines = (msg: ReturnType<typeof binary>) => headerBlockOf(msg).split('\r\n').slice(1, -2);
  const block = (ls: string[]) => `NATS/1.0\r\n${ls.map((l) => `${l}\r\n`).join('')}\r\n`;

  it('decodes what EventPublisher publishes, as the decoded headers do', () => {
    const d = warmDecoder();
    const msg = binary(record(), {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    msg.headers.set('Nats-Msg-Id', 'chatcmpl-1');
    const { bytes, headerLength } = wire(headerBlockOf(msg), msg.data);
    expect(expectAgreement(d, bytes, headerLength)).toEqual(d.decodeFull(msg));
    expect(d.decodeLeanRaw(bytes, headerLength)).toMatchObject({ kind: 'usage', id: 'chatcmpl-1' });
    // a source not validated yet: the full decoder first
    expect(new UsageDecoder().decodeLeanRaw(bytes, headerLength)).toBeUndefined();
  });

  it.each<[string, (ls: string[]) => string, string?]>([
    ['a status line', (ls) => block(ls).replace('NATS/1.0', 'NATS/1.0 503')],
    ['a repeated attribute', (ls) => block([...ls, 'ce-id: other'])],
    ['an attribute in another case', (ls) => block([...ls, 'Ce-Subject: s'])],
    ['a content-type header', (ls) => block([...ls, 'Content-Type: application/json'])],
    ['a bare LF in a value', (ls) => block([...ls, 'ce-subject: a\nb'])],
    ['a bare CR in a value', (ls) => block([...ls, 'ce-subject: a\rb'])],
    ['a non-ASCII value', (ls) => block([...ls, 'ce-subject: café'])],
    ['an invalid header name', (ls) => block([...ls, 'X Y: 1'])],
    ['a line without a colon', (ls) => block([...ls, 'garbage'])],
    ['an empty line inside the block', (ls) => block([...ls.slice(0, 2), '', ...ls.slice(2)])],
    ['a byte-order mark before the data', (ls) => block(ls), '\ufeff'],
  ])('leaves %s to the other paths', (_what, make, prefix = '') => {
    const d = warmDecoder();
    const msg = binary(record());
    const { bytes, headerLength } = wire(
      make(lines(msg)),
      prefix + new TextDecoder().decode(msg.data),
    );
    expect(expectAgreement(d, bytes, headerLength)).toBeUndefined();
    // the control: the same message without the flaw takes the raw path
    const clean = wire(block(lines(msg)), msg.data);
    expect(expectAgreement(d, clean.bytes, clean.headerLength)).toMatchObject({ kind: 'usage' });
  });

  it('decodes data with non-ASCII characters after ASCII headers', () => {
    const d = warmDecoder();
    const msg = binary(record({ model: 'modèle-ü', deployment: '部署' }));
    const { bytes, headerLength } = wire(headerBlockOf(msg), msg.data);
    expect(expectAgreement(d, bytes, headerLength)).toMatchObject({
      kind: 'usage',
      record: { model: 'modèle-ü', deployment: '部署' },
    });
  });

  it('leaves invalid UTF-8 and empty data to the other paths', () => {
    const d = warmDecoder();
    const head = headerBlockOf(binary(record()));
    const empty = wire(head, '');
    expect(d.decodeLeanRaw(empty.bytes, empty.headerLength)).toBeUndefined();
    const bad = wire(head, Uint8Array.of(0x7b, 0xff, 0x7d));
    expect(d.decodeLeanRaw(bad.bytes, bad.headerLength)).toBeUndefined();
  });

  it('accepts nothing the decoded headers read differently (random header blocks)', () => {
    const d = warmDecoder();
    const msg = binary(record());
    const base = lines(msg);
    const piece = fc.constantFrom(
      'ce-',
      'Ce-',
      'id',
      'subject',
      'tenantid',
      'traceparent',
      'content-type',
      'Nats-Msg-Id',
      ':',
      ': ',
      ' ',
      '\t',
      '\r',
      '\n',
      '\r\n',
      'é',
      '%20',
      '"',
      'x',
      'acme',
      '1.0',
    );
    const line = fc.array(piece, { maxLength: 6 }).map((ps) => ps.join(''));
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length), line), { maxLength: 3 }),
        fc.subarray([...base.keys()], { minLength: base.length - 1 }),
        (inserts, kept) => {
          const ls = kept.map((i) => base[i]!);
          for (const [at, l] of inserts) ls.splice(at, 0, l);
          const { bytes, headerLength } = wire(block(ls), msg.data);
          let clientReads = true;
          try {
            MsgHdrsImpl.decode(bytes.subarray(0, headerLength));
          } catch {
            clientReads = false;
          }
          if (!clientReads) expect(d.decodeLeanRaw(bytes, headerLength)).toBeUndefined();
          else if (expectAgreement(d, bytes, headerLength)) accepted++;
        },
      ),
      { numRuns: 3_000 },
    );
    expect(accepted).toBeGreaterThan(0);
  });
});
