import { DomainError } from '@aob/errors';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { CloudEvent } from 'cloudevents';
import fc from 'fast-check';
import { decodeCloudEvent, encodeBinary, encodeStructured } from './cloud-event-codec';
import { NATS, type NatsMessage } from './nats-binding';
import { percentDecodeHeaderValue, percentEncodeHeaderValue } from './percent-encoding';

const enc = new TextEncoder();
// Lone surrogates cannot travel as UTF-8; compare with what any UTF-8 transport would keep.
const wellFormed = (s: string) => new TextDecoder().decode(enc.encode(s));

/**
 * Conformance-style cases, modelled on cloudevents/conformance: a wire message in, the event
 * attributes and data expected out (or the reason it is rejected).
 */
interface ReadCase {
  name: string;
  headers?: Record<string, string | string[]>;
  body: string | Uint8Array;
  expect?: Record<string, unknown>;
  data?: unknown;
  error?: RegExp;
}

const BASE_HEADERS = {
  'ce-specversion': '1.0',
  'ce-id': '1234-1234-1234',
  'ce-source': '/mycontext/subcontext',
  'ce-type': 'com.example.someevent',
};

const readCases: ReadCase[] = [
  {
    name: 'binary: spec example',
    headers: {
      ...BASE_HEADERS,
      'ce-time': '2018-04-05T03:56:24Z',
      'ce-datacontenttype': 'application/json',
    },
    body: '{"hello":"world"}',
    expect: {
      id: '1234-1234-1234',
      source: '/mycontext/subcontext',
      type: 'com.example.someevent',
      time: '2018-04-05T03:56:24Z',
      datacontenttype: 'application/json',
    },
    data: { hello: 'world' },
  },
  {
    name: 'binary: header names are case-insensitive',
    headers: {
      'CE-SpecVersion': '1.0',
      'Ce-Id': 'a',
      'CE-SOURCE': 'urn:x',
      'ce-Type': 't',
      'Ce-TenantId': 'acme',
    },
    body: '',
    expect: { id: 'a', source: 'urn:x', type: 't', tenantid: 'acme' },
    data: undefined,
  },
  {
    name: 'binary: Content-Type is read as datacontenttype when ce-datacontenttype is absent',
    headers: { ...BASE_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' },
    body: 'plain text',
    expect: { datacontenttype: 'text/plain; charset=utf-8' },
    data: 'plain text',
  },
  {
    name: 'binary: ce-datacontenttype wins over Content-Type',
    headers: {
      ...BASE_HEADERS,
      'ce-datacontenttype': 'application/json',
      'content-type': 'text/plain',
    },
    body: '[1,2]',
    expect: { datacontenttype: 'application/json' },
    data: [1, 2],
  },
  {
    name: 'binary: absent content type means JSON',
    headers: BASE_HEADERS,
    body: '{"a":1}',
    data: { a: 1 },
  },
  {
    name: 'binary: +json suffix is JSON',
    headers: { ...BASE_HEADERS, 'ce-datacontenttype': 'application/vnd.aob+json' },
    body: '"s"',
    data: 's',
  },
  {
    name: 'binary: other content types keep the bytes',
    headers: { ...BASE_HEADERS, 'ce-datacontenttype': 'application/octet-stream' },
    body: Uint8Array.from([0, 255, 1, 128]),
    data: Uint8Array.from([0, 255, 1, 128]),
  },
  {
    name: 'binary: percent-encoded values are decoded (spec example)',
    headers: { ...BASE_HEADERS, 'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80' },
    body: '',
    expect: { subject: 'Euro € 😀' },
  },
  {
    name: 'binary: lower-case hex and needless escapes are accepted',
    headers: { ...BASE_HEADERS, 'ce-subject': '%e2%82%ac%41' },
    body: '',
    expect: { subject: '€A' },
  },
  {
    name: 'binary: RFC 7230 quoted values (older senders) are unquoted',
    headers: { ...BASE_HEADERS, 'ce-subject': '"a \\"quoted\\" value"' },
    body: '',
    expect: { subject: 'a "quoted" value' },
  },
  {
    name: 'binary: extensions tenantid, traceparent, tracestate',
    headers: {
      ...BASE_HEADERS,
      'ce-tenantid': 'acme',
      'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'ce-tracestate': 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    },
    body: '',
    expect: {
      tenantid: 'acme',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    },
  },
  {
    name: 'binary: non-ce headers are ignored',
    headers: { ...BASE_HEADERS, 'Nats-Msg-Id': 'x', 'X-Other': 'y' },
    body: '',
    expect: { id: '1234-1234-1234' },
  },
  {
    name: 'binary: overlong UTF-8 is rejected',
    headers: { ...BASE_HEADERS, 'ce-subject': '%C0%A0' },
    body: '',
    error: /ce-subject.*UTF-8/,
  },
  {
    name: 'binary: broken escape is rejected',
    headers: { ...BASE_HEADERS, 'ce-subject': 'a%2' },
    body: '',
    error: /percent-escape/,
  },
  {
    name: 'binary: invalid attribute name',
    headers: { ...BASE_HEADERS, 'ce-tenant_id': 'x' },
    body: '',
    error: /"tenant_id" is not a valid attribute name/,
  },
  {
    name: 'binary: missing id',
    headers: { 'ce-specversion': '1.0', 'ce-source': 's', 'ce-type': 't' },
    body: '',
    error: /"id" is missing/,
  },
  {
    name: 'binary: missing source',
    headers: { 'ce-specversion': '1.0', 'ce-id': 'i', 'ce-type': 't' },
    body: '',
    error: /"source" is missing/,
  },
  {
    name: 'binary: missing type',
    headers: { 'ce-specversion': '1.0', 'ce-id': 'i', 'ce-source': 's' },
    body: '',
    error: /"type" is missing/,
  },
  {
    name: 'binary: empty id',
    headers: { ...BASE_HEADERS, 'ce-id': '' },
    body: '',
    error: /"id" must be a non-empty string/,
  },
  {
    name: 'binary: specversion 0.3',
    headers: { ...BASE_HEADERS, 'ce-specversion': '0.3' },
    body: '',
    error: /specversion "0.3" is not supported/,
  },
  {
    name: 'binary: ce- headers without specversion',
    headers: { 'ce-id': 'i', 'ce-source': 's', 'ce-type': 't' },
    body: '{}',
    error: /ce-specversion/,
  },
  {
    name: 'binary: repeated attribute header',
    headers: { ...BASE_HEADERS, 'ce-subject': ['a', 'b'] },
    body: '',
    error: /appears 2 times/,
  },
  {
    name: 'binary: bad time',
    headers: { ...BASE_HEADERS, 'ce-time': 'yesterday' },
    body: '',
    error: /time/,
  },
  {
    name: 'binary: JSON data that is not JSON',
    headers: { ...BASE_HEADERS, 'ce-datacontenttype': 'application/json' },
    body: '{oops',
    error: /data is not valid JSON/,
  },
  {
    name: 'structured: spec example',
    headers: { 'Content-Type': 'application/cloudevents+json; charset=utf-8' },
    body: JSON.stringify({
      specversion: '1.0',
      type: 'com.example.someevent',
      source: '/s',
      id: 'A1',
      datacontenttype: 'application/json',
      data: { x: [1] },
    }),
    expect: { id: 'A1', type: 'com.example.someevent', datacontenttype: 'application/json' },
    data: { x: [1] },
  },
  {
    name: 'structured: data_base64',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: JSON.stringify({
      specversion: '1.0',
      type: 't',
      source: 's',
      id: 'i',
      datacontenttype: 'image/png',
      data_base64: 'AAEC',
    }),
    data: Uint8Array.from([0, 1, 2]),
  },
  {
    name: 'structured: extension types string, boolean, integer',
    headers: { 'Content-Type': 'application/cloudevents+json' },
    body: JSON.stringify({
      specversion: '1.0',
      type: 't',
      source: 's',
      id: 'i',
      tenantid: 'acme',
      flag: true,
      count: 42,
    }),
    expect: { tenantid: 'acme', flag: true, count: 42 },
  },
  {
    name: 'structured: no headers at all (binding 1.0.2 senders)',
    body: JSON.stringify({ specversion: '1.0', type: 't', source: 's', id: 'i', data: 'x' }),
    expect: { id: 'i' },
    data: 'x',
  },
  {
    name: 'structured: not JSON',
    headers: { 'Content-Type': 'application/cloudevents+json' },
    body: 'nope',
    error: /structured payload is not JSON/,
  },
  {
    name: 'structured: JSON array',
    headers: { 'Content-Type': 'application/cloudevents+json' },
    body: '[]',
    error: /not a JSON object/,
  },
  {
    name: 'structured: missing specversion',
    body: JSON.stringify({ type: 't', source: 's', id: 'i' }),
    error: /"specversion" is missing/,
  },
  {
    name: 'structured: object extension',
    body: JSON.stringify({ specversion: '1.0', type: 't', source: 's', id: 'i', ext: { a: 1 } }),
    error: /"ext" must be a string, boolean/,
  },
  {
    name: 'structured: upper-case attribute',
    body: JSON.stringify({ specversion: '1.0', type: 't', source: 's', id: 'i', tenantId: 'x' }),
    error: /"tenantId" is not a valid attribute name/,
  },
  {
    name: 'structured: numeric id',
    body: JSON.stringify({ specversion: '1.0', type: 't', source: 's', id: 5 }),
    error: /"id" must be a string/,
  },
  {
    name: 'structured: data and data_base64',
    body: JSON.stringify({
      specversion: '1.0',
      type: 't',
      source: 's',
      id: 'i',
      data: 1,
      data_base64: 'AA==',
    }),
    error: /both "data" and "data_base64"/,
  },
  {
    name: 'structured: batch mode',
    headers: { 'Content-Type': 'application/cloudevents-batch+json' },
    body: '[]',
    error: /batch/,
  },
  {
    name: 'structured: unsupported format',
    headers: { 'Content-Type': 'application/cloudevents+avro' },
    body: 'x',
    error: /not supported/,
  },
  {
    name: 'garbage: random bytes, no headers',
    body: Uint8Array.from([0xff, 0xfe, 0x00]),
    error: /not valid UTF-8/,
  },
  { name: 'garbage: empty message', body: '', error: /not JSON/ },
];

function toMsgHdrs(h: Record<string, string | string[]> | undefined) {
  if (!h) return undefined;
  const out = natsHeaders();
  for (const [k, v] of Object.entries(h)) for (const value of [v].flat()) out.append(k, value);
  return out;
}

describe('CloudEvents NATS binding: reading', () => {
  describe.each(readCases)('$name', (c) => {
    const body = typeof c.body === 'string' ? enc.encode(c.body) : c.body;

    it('decodeCloudEvent (NATS MsgHdrs)', () => {
      const read = () => decodeCloudEvent({ headers: toMsgHdrs(c.headers), data: body });
      if (c.error) {
        expect(read).toThrow(DomainError);
        expect(read).toThrow(c.error);
        try {
          read();
        } catch (err) {
          expect((err as DomainError).code).toBe('InvalidEvent');
          expect((err as DomainError).retryable).toBe(false);
        }
        return;
      }
      const event = read();
      expect(event).toMatchObject(c.expect ?? {});
      if ('data' in c) expect(event.data).toEqual(c.data);
    });

    it('NATS.toEvent / NATS.isEvent (Binding interface)', () => {
      const flat = Object.fromEntries(
        Object.entries(c.headers ?? {}).filter(([, v]) => typeof v === 'string'),
      ) as Record<string, string>;
      const repeated = Object.values(c.headers ?? {}).some((v) => Array.isArray(v));
      if (repeated) return; // a Record cannot carry a repeated header
      const message: NatsMessage = { headers: flat, body: c.body };
      expect(NATS.isEvent(message)).toBe(!c.error);
      if (c.error) {
        expect(() => NATS.toEvent(message)).toThrow(c.error);
        return;
      }
      const event = NATS.toEvent(message) as CloudEvent<unknown>;
      expect(event).toMatchObject(c.expect ?? {});
      if ('data' in c) expect(event.data).toEqual(c.data);
    });
  });
});

describe('CloudEvents NATS binding: writing', () => {
  const event = new CloudEvent<unknown>({
    id: 'id 1',
    source: 'aob://gateway',
    type: 'aob.agent.execute.v1',
    time: '2024-01-02T03:04:05.678Z',
    subject: 'run "42" 100% ✓',
    datacontenttype: 'application/json',
    tenantid: 'acme',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    data: { agent: 'echo', input: { message: 'hé' } },
  });

  it('binary: every attribute in a ce- header, percent-encoded, data alone in the body', () => {
    const message = NATS.binary(event);
    expect(message.headers).toEqual({
      'ce-id': 'id%201',
      'ce-source': 'aob://gateway',
      'ce-type': 'aob.agent.execute.v1',
      'ce-specversion': '1.0',
      'ce-time': '2024-01-02T03:04:05.678Z',
      'ce-subject': 'run%20%2242%22%20100%25%20%E2%9C%93',
      'ce-datacontenttype': 'application/json',
      'ce-tenantid': 'acme',
      'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    expect(JSON.parse(message.body as string)).toEqual({ agent: 'echo', input: { message: 'hé' } });
  });

  it('binary: bytes stay bytes and get application/octet-stream when no content type is set', () => {
    const bytes = Uint8Array.from([1, 2, 3]);
    const message = NATS.binary(
      new CloudEvent<Uint8Array>({ id: 'i', source: 's', type: 't', data: bytes }),
    );
    expect(message.body).toEqual(bytes);
    expect(message.headers['ce-datacontenttype']).toBe('application/octet-stream');
    expect(message.headers).not.toHaveProperty('ce-data_base64');
  });

  it('structured: Content-Type application/cloudevents+json and the whole event as JSON', () => {
    const message = NATS.structured(event);
    expect(message.headers).toEqual({ 'Content-Type': 'application/cloudevents+json' });
    const json = JSON.parse(message.body as string);
    expect(json).toMatchObject({
      id: 'id 1',
      subject: 'run "42" 100% ✓',
      tenantid: 'acme',
      data: { agent: 'echo' },
    });
  });

  it('encodeBinary produces NATS headers the decoder reads back', () => {
    const { headers, data } = encodeBinary(event);
    expect(headers.get('ce-subject')).toBe('run%20%2242%22%20100%25%20%E2%9C%93');
    const back = decodeCloudEvent({ headers, data });
    expect(back.toJSON()).toEqual(event.toJSON());
  });
});

describe('percent-encoding', () => {
  it('encodes the spec example', () => {
    expect(percentEncodeHeaderValue('Euro € 😀')).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
  });
  it('encodes control characters and DEL', () => {
    expect(percentEncodeHeaderValue('a\tb\u007f\r\n')).toBe('a%09b%7F%0D%0A');
  });
  it('round-trips any string', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme' }),
        (s) => percentDecodeHeaderValue(percentEncodeHeaderValue(s)) === s,
      ),
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const w = wellFormed(s);
        return percentDecodeHeaderValue(percentEncodeHeaderValue(w)) === w;
      }),
    );
  });
  it('encodes to printable ASCII without space, quote or stray percent', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) =>
        /^([\x21\x23\x24\x26-\x7e]|%[0-9A-F]{2})*$/.test(percentEncodeHeaderValue(s)),
      ),
    );
  });
});

describe('encode -> decode is the identity (property)', () => {
  const nonEmpty = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map(wellFormed);
  const extensionName = fc
    .stringMatching(/^[a-z0-9]{1,20}$/)
    .filter(
      (n) =>
        ![
          'id',
          'source',
          'type',
          'specversion',
          'time',
          'subject',
          'datacontenttype',
          'dataschema',
          'data',
          'schemaurl',
          'datacontentencoding',
        ].includes(n),
    );
  const payload = fc.oneof(
    fc.record({
      datacontenttype: fc.constantFrom(
        undefined,
        'application/json',
        'application/cloudevents-test+json',
      ),
      data: fc.option(fc.jsonValue(), { nil: undefined }),
    }),
    fc.record({ datacontenttype: fc.constant('text/plain; charset=utf-8'), data: nonEmpty }),
    fc.record({
      datacontenttype: fc.constant('application/octet-stream'),
      data: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  );
  const eventArb = fc.record({
    id: nonEmpty,
    source: fc.oneof(fc.webUrl(), fc.constantFrom('/a/b', 'urn:aob:x', 'aob://gateway')),
    type: nonEmpty,
    subject: fc.option(nonEmpty, { nil: undefined }),
    time: fc
      .date({ min: new Date('1970-01-01'), max: new Date('2999-12-31'), noInvalidDate: true })
      .map((d) => d.toISOString()),
    extensions: fc.dictionary(extensionName, nonEmpty, { maxKeys: 4 }),
    payload,
  });

  type EventShape = typeof eventArb extends fc.Arbitrary<infer T> ? T : never;
  const build = (e: EventShape) => {
    const attrs: Record<string, unknown> = {
      id: e.id,
      source: e.source,
      type: e.type,
      time: e.time,
      ...e.extensions,
    };
    if (e.subject !== undefined) attrs.subject = e.subject;
    if (e.payload.datacontenttype !== undefined) attrs.datacontenttype = e.payload.datacontenttype;
    if (e.payload.data !== undefined) attrs.data = e.payload.data;
    return new CloudEvent<unknown>(attrs);
  };
  // JSON cannot tell -0 from 0: compare data the way it travels.
  const normalise = (data: unknown) =>
    data instanceof Uint8Array || data === undefined ? data : JSON.parse(JSON.stringify(data));

  it.each([
    ['binary', encodeBinary],
    ['structured', encodeStructured],
  ] as const)('%s mode', (_mode, encode) => {
    fc.assert(
      fc.property(eventArb, (e) => {
        const event = build(e);
        const back = decodeCloudEvent(encode(event));
        const { data: _d, data_base64: _b, ...attrs } = event.toJSON();
        const { data: _d2, data_base64: _b2, ...backAttrs } = back.toJSON();
        expect(backAttrs).toEqual(attrs);
        expect(normalise(back.data)).toEqual(normalise(event.data));
      }),
      { numRuns: 300 },
    );
  });
});
