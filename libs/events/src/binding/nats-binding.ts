import { DomainError } from '@aob/errors';
import {
  CloudEvent,
  ValidationError,
  type Binding,
  type CloudEventV1,
  type Message,
} from 'cloudevents';
import {
  HeaderValueError,
  percentDecodeHeaderValue,
  percentEncodeHeaderValue,
} from './percent-encoding';

/**
 * A NATS message as the CloudEvents NATS protocol binding sees it. Header names are matched
 * case-insensitively on reading; `body` is the payload (a string is sent as UTF-8).
 */
export interface NatsMessage {
  headers: Record<string, string>;
  body: Uint8Array | string;
}

export const CE_HEADER_PREFIX = 'ce-';
export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json';
export const JSON_CONTENT_TYPE = 'application/json';
const OCTET_STREAM = 'application/octet-stream';

/** CloudEvents attribute names: lower-case ASCII letters and digits only (spec 1.0 "Attribute Naming Convention"). */
const ATTRIBUTE_NAME = /^[a-z0-9]+$/;
/** Names that are members of the JSON format but never context attributes. */
const RESERVED_NAMES = new Set(['data', 'data_base64']);
const REQUIRED_STRING_ATTRIBUTES = ['id', 'source', 'type'] as const;
/** Core optional attributes whose type is String/URI/URI-reference/Timestamp: never booleans or numbers. */
const STRING_ATTRIBUTES = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'datacontenttype',
  'dataschema',
  'subject',
  'time',
]);
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const UTF8 = new TextEncoder();
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Header names lower-cased, each with every value it had. */
export type HeaderEntries = Iterable<readonly [string, string | readonly string[]]>;

/** A decoded event plus the context attributes exactly as they arrived (the SDK fills in a missing `time`). */
export interface DecodedCloudEvent {
  event: CloudEvent<unknown>;
  attributes: Readonly<Record<string, string | number | boolean>>;
  mode: 'binary' | 'structured';
}

const invalid = (reason: string, cause?: unknown) =>
  new DomainError(
    'InvalidEvent',
    `not a valid CloudEvent 1.0: ${reason}`,
    cause === undefined ? {} : { cause },
  );

/** True for application/json, any +json suffix, and an absent content type (the JSON format's default). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType === '') return true;
  const mediaType = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return (
    mediaType === JSON_CONTENT_TYPE || mediaType.endsWith('+json') || mediaType === 'text/json'
  );
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const toBase64 = (b: Uint8Array) =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** The attribute's canonical string (CloudEvents type system), as carried in a header. */
function canonicalString(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  if (value instanceof Date) return value.toISOString();
  if (isBytes(value)) return toBase64(value);
  throw invalid(`attribute "${name}" has a value outside the CloudEvents type system`);
}

/** Context attributes of an event object (data and SDK bookkeeping fields left out). */
function contextAttributes(event: CloudEventV1<unknown>): [string, unknown][] {
  return Object.entries(event).filter(
    ([name, value]) => value !== undefined && value !== null && !RESERVED_NAMES.has(name),
  );
}

/** The event's data as bytes when it is binary (either `data` bytes or `data_base64`). */
function binaryData(event: CloudEventV1<unknown>): Uint8Array | undefined {
  if (isBytes(event.data)) return event.data;
  if (event.data === undefined && typeof event.data_base64 === 'string')
    return Buffer.from(event.data_base64, 'base64');
  return undefined;
}

function toBinaryMessage<T>(event: CloudEventV1<T>): NatsMessage {
  const headers: Record<string, string> = {};
  let contentType = event.datacontenttype;
  const bytes = binaryData(event);
  let body: Uint8Array | string;
  if (bytes) {
    body = bytes;
    // Bytes are not JSON, and an absent datacontenttype would tell the reader they are.
    contentType ??= OCTET_STREAM;
  } else if (event.data === undefined) {
    body = new Uint8Array(0);
  } else if (typeof event.data === 'string' && !isJsonContentType(contentType)) {
    body = event.data;
  } else {
    body = JSON.stringify(event.data);
  }
  for (const [name, value] of contextAttributes(event)) {
    if (name === 'datacontenttype') continue;
    headers[CE_HEADER_PREFIX + name] = percentEncodeHeaderValue(canonicalString(name, value));
  }
  if (contentType !== undefined)
    headers[`${CE_HEADER_PREFIX}datacontenttype`] = percentEncodeHeaderValue(contentType);
  return { headers, body };
}

function toStructuredMessage<T>(event: CloudEventV1<T>): NatsMessage {
  const json: Record<string, unknown> = {};
  for (const [name, value] of contextAttributes(event)) {
    json[name] =
      value instanceof Date ? value.toISOString() : isBytes(value) ? toBase64(value) : value;
  }
  const bytes = binaryData(event);
  if (bytes) json.data_base64 = toBase64(bytes);
  else if (event.data !== undefined) json.data = event.data;
  return { headers: { 'Content-Type': STRUCTURED_CONTENT_TYPE }, body: JSON.stringify(json) };
}

/** Lower-cases header names and keeps every value, so duplicates can be told apart. */
function normaliseHeaders(
  headers: HeaderEntries | Record<string, unknown> | undefined,
): Map<string, string[]> {
  const map = new Map<string, string[]>();
  if (!headers) return map;
  const entries: Iterable<readonly [string, unknown]> =
    Symbol.iterator in headers ? headers : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue;
    const key = name.toLowerCase();
    const values = map.get(key) ?? [];
    // Header values are strings; anything else (a parsed HTTP header object, say) is not an attribute.
    for (const v of Array.isArray(value) ? (value as unknown[]) : [value]) {
      if (typeof v === 'string') values.push(v);
      else if (typeof v === 'number' || typeof v === 'boolean') values.push(String(v));
    }
    map.set(key, values);
  }
  return map;
}

function singleHeader(headers: Map<string, string[]>, name: string): string | undefined {
  const values = headers.get(name);
  if (!values || values.length === 0) return undefined;
  if (values.length > 1) throw invalid(`header "${name}" appears ${values.length} times`);
  return values[0];
}

function utf8(body: Uint8Array, what: string): string {
  try {
    return STRICT_UTF8.decode(body);
  } catch (err) {
    throw invalid(`${what} is not valid UTF-8`, err);
  }
}

function checkAttributeName(name: string, where: string): void {
  if (!ATTRIBUTE_NAME.test(name) || RESERVED_NAMES.has(name)) {
    throw invalid(`${where} "${name}" is not a valid attribute name (lower-case a-z and 0-9 only)`);
  }
}

function parseStructured(body: Uint8Array): {
  attributes: Record<string, string | number | boolean>;
  data: unknown;
} {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8(body, 'structured payload'));
  } catch (err) {
    if (err instanceof DomainError) throw err;
    throw invalid(`structured payload is not JSON (${(err as Error).message})`, err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid('structured payload is not a JSON object');
  }
  const obj = parsed as Record<string, unknown>;
  const attributes: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(obj)) {
    if (RESERVED_NAMES.has(name) || value === null) continue;
    checkAttributeName(name, 'member');
    if (typeof value === 'string') attributes[name] = value;
    else if (STRING_ATTRIBUTES.has(name)) throw invalid(`attribute "${name}" must be a string`);
    else if (typeof value === 'boolean') attributes[name] = value;
    else if (
      typeof value === 'number' &&
      Number.isInteger(value) &&
      value >= INT32_MIN &&
      value <= INT32_MAX
    ) {
      attributes[name] = value;
    } else
      throw invalid(`extension attribute "${name}" must be a string, boolean or 32-bit integer`);
  }
  const hasData = obj.data !== undefined;
  const base64 = obj.data_base64;
  if (base64 !== undefined && base64 !== null) {
    if (hasData) throw invalid('both "data" and "data_base64" are present');
    if (typeof base64 !== 'string' || !BASE64.test(base64))
      throw invalid('"data_base64" is not base64');
    return { attributes, data: new Uint8Array(Buffer.from(base64, 'base64')) };
  }
  return { attributes, data: obj.data };
}

function parseBinary(
  headers: Map<string, string[]>,
  body: Uint8Array,
): { attributes: Record<string, string | number | boolean>; data: unknown } {
  const attributes: Record<string, string> = {};
  for (const name of headers.keys()) {
    if (!name.startsWith(CE_HEADER_PREFIX)) continue;
    const attribute = name.slice(CE_HEADER_PREFIX.length);
    checkAttributeName(attribute, 'header');
    const raw = singleHeader(headers, name) ?? '';
    try {
      attributes[attribute] = percentDecodeHeaderValue(raw);
    } catch (err) {
      if (err instanceof HeaderValueError) throw invalid(`header "${name}": ${err.message}`, err);
      throw err;
    }
  }
  if (attributes.datacontenttype === undefined) {
    const contentType = singleHeader(headers, 'content-type');
    if (contentType !== undefined && contentType !== '') attributes.datacontenttype = contentType;
  }
  return { attributes, data: decodeBinaryData(body, attributes.datacontenttype) };
}

function decodeBinaryData(body: Uint8Array, contentType: string | undefined): unknown {
  if (body.length === 0) return undefined;
  if (isJsonContentType(contentType)) {
    const text = utf8(body, 'data');
    try {
      return JSON.parse(text);
    } catch (err) {
      throw invalid(
        `data is not valid JSON although datacontenttype is ${contentType ?? 'absent (JSON)'}`,
        err,
      );
    }
  }
  if (/^text\//i.test(contentType ?? '')) return utf8(body, 'data');
  // Copy: the payload may be a view into a larger socket buffer we must not keep alive.
  return body.slice();
}

function buildEvent(
  attributes: Record<string, string | number | boolean>,
  data: unknown,
): CloudEvent<unknown> {
  const specversion = attributes.specversion;
  if (specversion === undefined) throw invalid('required attribute "specversion" is missing');
  if (specversion !== '1.0')
    throw invalid(`specversion "${String(specversion)}" is not supported (only 1.0)`);
  for (const name of REQUIRED_STRING_ATTRIBUTES) {
    const value = attributes[name];
    if (value === undefined) throw invalid(`required attribute "${name}" is missing`);
    if (typeof value !== 'string' || value === '')
      throw invalid(`required attribute "${name}" must be a non-empty string`);
  }
  try {
    return new CloudEvent<unknown>(
      { ...attributes, ...(data === undefined ? {} : { data }) },
      true,
    );
  } catch (err) {
    if (err instanceof ValidationError) {
      const details = (err.errors as { instancePath?: string; message?: string }[])
        .map((e) =>
          typeof e === 'object' && e !== null
            ? `${e.instancePath ?? ''} ${e.message ?? ''}`.trim()
            : String(e),
        )
        .filter((s) => s !== '');
      const first = err.message.split('\n')[0] ?? 'invalid';
      throw invalid(details.length > 0 ? details.join('; ') : first, err);
    }
    throw invalid((err as Error).message, err);
  }
}

/**
 * Decodes a NATS message in either content mode. Structured when Content-Type is
 * `application/cloudevents...` (binding 3.x), binary when a `ce-specversion` header is present, and
 * structured again when there are no `ce-` headers at all (binding 1.0.2 and earlier had no headers).
 */
export function decodeNatsCloudEvent(
  headers: HeaderEntries | Record<string, unknown> | undefined,
  body: Uint8Array | string,
): DecodedCloudEvent {
  const map = normaliseHeaders(headers);
  const bytes = typeof body === 'string' ? UTF8.encode(body) : body;
  const contentType = singleHeader(map, 'content-type');
  let mode: DecodedCloudEvent['mode'];
  if (contentType !== undefined && /^application\/cloudevents/i.test(contentType)) {
    if (/^application\/cloudevents-batch/i.test(contentType))
      throw invalid('batch content mode is not supported on NATS');
    if (!/^application\/cloudevents\+json\s*(;|$)/i.test(contentType)) {
      throw invalid(
        `structured event format "${contentType}" is not supported (only application/cloudevents+json)`,
      );
    }
    mode = 'structured';
  } else if (map.has(`${CE_HEADER_PREFIX}specversion`)) {
    mode = 'binary';
  } else if ([...map.keys()].some((k) => k.startsWith(CE_HEADER_PREFIX))) {
    throw invalid('ce- headers are present but "ce-specversion" is missing');
  } else {
    mode = 'structured';
  }
  const { attributes, data } = mode === 'binary' ? parseBinary(map, bytes) : parseStructured(bytes);
  return { event: buildEvent(attributes, data), attributes, mode };
}

function messageHeaders(message: Message): Record<string, unknown> {
  return message.headers ?? {};
}

function messageBody(message: Message): Uint8Array | string {
  const body = message.body;
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  // An already-parsed JSON body (what HTTP frameworks hand over) is serialised back.
  return JSON.stringify(body);
}

/**
 * CloudEvents NATS protocol binding (cloudevents/spec `bindings/nats-protocol-binding.md`, 1.0.3)
 * on the `cloudevents` SDK's Binding interface. `toEvent` throws DomainError('InvalidEvent').
 */
export const NATS: Binding<NatsMessage, NatsMessage> = {
  binary: toBinaryMessage,
  structured: toStructuredMessage,
  toEvent: <T>(message: Message) =>
    decodeNatsCloudEvent(messageHeaders(message), messageBody(message)).event as CloudEventV1<T>,
  isEvent: (message: Message) => {
    try {
      decodeNatsCloudEvent(messageHeaders(message), messageBody(message));
      return true;
    } catch {
      return false;
    }
  },
};
