import { DomainError } from '@aob/errors';
import {
  AGENT_NAME_PATTERN,
  decodeCloudEventDetailed,
  EVENTS,
  eventByType,
  ID_PATTERN,
  TENANT_PATTERN,
  type NatsCloudEventMessage,
  type UsageRecord,
} from '@aob/events';

/** What one METERING message is, as far as metering cares. */
export type DecodedMessage =
  | {
      kind: 'usage';
      id: string;
      source: string;
      type: string;
      /** The `tenantid` attribute, when present. */
      tenantId: string | undefined;
      record: UsageRecord;
    }
  /** A valid catalog event metering does not store (the quota events it and the gateway publish). */
  | { kind: 'other'; id: string; type: string; tenantId: string | undefined }
  /** Nothing a redelivery can fix: terminated with this reason. */
  | {
      kind: 'poison';
      code: string;
      reason: string;
      id?: string;
      type?: string;
      tenantId?: string;
    };

const USAGE_TYPE = EVENTS.meteringUsage.type;
/** Events the `metering` consumer sees on METERING and acks without work. */
const IGNORED_TYPES: ReadonlySet<string> = new Set([
  EVENTS.quotaExceeded.type,
  EVENTS.budgetWarning.type,
]);

/** The attributes the lean path understands; any other one sends the message to the full decoder. */
const LEAN_ATTRIBUTES: ReadonlySet<string> = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'datacontenttype',
  'subject',
  'tenantid',
  'traceparent',
  'tracestate',
]);
/** Bounds the cache of accepted sources (AOB has a handful; a flood of made-up ones just stays slow). */
const MAX_KNOWN_SOURCES = 1_024;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
/** The first line of a NATS header block without a status (a status message is never an event). */
const HEADER_START = 'NATS/1.0\r\n';
const [
  BIT_SPECVERSION,
  BIT_ID,
  BIT_SOURCE,
  BIT_TYPE,
  BIT_TIME,
  BIT_DATACONTENTTYPE,
  BIT_SUBJECT,
  BIT_TENANTID,
] = [1, 2, 4, 8, 16, 32, 64, 128] as const;
const BIT_TRACEPARENT = 256;
const BIT_TRACESTATE = 512;

/**
 * The bit of the LEAN_ATTRIBUTES name text[from, to) (0 for any other name), compared in place:
 * no substring per header (a repeated attribute is left to the full decoder).
 */
function attributeBit(text: string, from: number, to: number): number {
  const is = (name: string) => text.startsWith(name, from);
  switch (to - from) {
    case 2:
      return is('id') ? BIT_ID : 0;
    case 4:
      return is('type') ? BIT_TYPE : is('time') ? BIT_TIME : 0;
    case 6:
      return is('source') ? BIT_SOURCE : 0;
    case 7:
      return is('subject') ? BIT_SUBJECT : 0;
    case 8:
      return is('tenantid') ? BIT_TENANTID : 0;
    case 10:
      return is('tracestate') ? BIT_TRACESTATE : 0;
    case 11:
      return is('specversion') ? BIT_SPECVERSION : is('traceparent') ? BIT_TRACEPARENT : 0;
    case 15:
      return is('datacontenttype') ? BIT_DATACONTENTTYPE : 0;
    default:
      return 0;
  }
}

/** A message's bytes as the NATS client received them: the header block, then the payload. */
export interface RawMessage {
  bytes: Uint8Array;
  headerLength: number;
}

/**
 * The received bytes of a JetStream message from `@nats-io/jetstream` 3.x (JsMsgImpl over
 * nats-core's MsgImpl); undefined for anything else
 * (another client version, a message built in memory), which then takes the decoded-header path.
 */
export function rawMessageOf(msg: unknown): RawMessage | undefined {
  const inner = (msg as { msg?: unknown }).msg as
    { _rdata?: unknown; _msg?: { hdr?: unknown } } | undefined;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const bytes = inner._rdata;
  const headerLength = inner._msg?.hdr;
  if (!(bytes instanceof Uint8Array) || typeof headerLength !== 'number') return undefined;
  if (headerLength <= 0 || headerLength > bytes.length) return undefined;
  return { bytes, headerLength };
}

const digitsAt = (v: string, from: number, n: number): number => {
  let x = 0;
  for (let i = from; i < from + n; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    x = x * 10 + d;
  }
  return x;
};
const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * `YYYY-MM-DDTHH:mm:ss.sssZ` with every field in range (years 1000-9999, no leap second): what
 * Date#toISOString writes, and valid for the CloudEvents SDK (RFC 3339) and zod's iso.datetime.
 * Checked character by character: Date.parse per event showed up in profiles.
 */
export function isCanonicalTimestamp(v: string): boolean {
  if (
    v.length !== 24 ||
    v[4] !== '-' ||
    v[7] !== '-' ||
    v[10] !== 'T' ||
    v[13] !== ':' ||
    v[16] !== ':' ||
    v[19] !== '.' ||
    v[23] !== 'Z'
  )
    return false;
  const year = digitsAt(v, 0, 4);
  const month = digitsAt(v, 5, 2);
  const day = digitsAt(v, 8, 2);
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month]!)
    return false;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)))
    return false;
  const hour = digitsAt(v, 11, 2);
  const minute = digitsAt(v, 14, 2);
  const second = digitsAt(v, 17, 2);
  return (
    hour >= 0 &&
    hour <= 23 &&
    minute >= 0 &&
    minute <= 59 &&
    second >= 0 &&
    second <= 59 &&
    digitsAt(v, 20, 3) >= 0
  );
}

const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isAmount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const optional = (v: unknown, pattern?: RegExp) =>
  v === undefined || (typeof v === 'string' && (pattern === undefined || pattern.test(v)));

/**
 * The cheap check of usage data: true only for values `usageRecordSchema` accepts too (anything
 * it is unsure of goes to the schema itself, which also words the reason).
 */
function isPlainUsageRecord(v: unknown): v is UsageRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.tenantId === 'string' &&
    TENANT_PATTERN.test(r.tenantId) &&
    optional(r.runId, ID_PATTERN) &&
    optional(r.agent, AGENT_NAME_PATTERN) &&
    optional(r.requested) &&
    typeof r.model === 'string' &&
    typeof r.deployment === 'string' &&
    isCount(r.promptTokens) &&
    isCount(r.completionTokens) &&
    isAmount(r.costUsd) &&
    isAmount(r.latencyMs) &&
    typeof r.at === 'string' &&
    isCanonicalTimestamp(r.at)
  );
}

/**
 * Decodes METERING messages. Binary-mode usage events the way AOB publishes them take a lean path
 * (headers read once, one JSON.parse, a hand-written check of the data) that accepts only what the
 * full path — the CloudEvents NATS binding of `@aob/events` plus the catalog's zod schema —
 * accepts too; anything else (structured mode, percent-encoded or quoted values, unknown
 * attributes, a source not yet seen, invalid data, other types) goes through that full path, which
 * gives the reason a poison message is terminated with.
 */
export class UsageDecoder {
  /** Sources the full decoder has accepted (the SDK's uri-reference check is the costly part). */
  private readonly knownSources = new Set<string>();

  constructor(private readonly maxMessageBytes = 1024 * 1024) {}

  decode(msg: NatsCloudEventMessage): DecodedMessage {
    const raw = rawMessageOf(msg);
    if (raw) {
      if (raw.bytes.length - raw.headerLength > this.maxMessageBytes) return this.tooLarge(msg);
      return this.decodeLeanRaw(raw.bytes, raw.headerLength) ?? this.decodeFull(msg);
    }
    if (msg.data.length > this.maxMessageBytes) return this.tooLarge(msg);
    return this.decodeLean(msg) ?? this.decodeFull(msg);
  }

  private tooLarge(msg: NatsCloudEventMessage): DecodedMessage {
    return {
      kind: 'poison',
      code: 'PayloadTooLarge',
      reason: `payload of ${msg.data.length} bytes exceeds the limit of ${this.maxMessageBytes} bytes`,
    };
  }

  /**
   * The lean path on the bytes as received (NATS header block, then the payload): one UTF-8
   * decode of the whole message, the header lines read in place. Spares the NATS client's header
   * decoding (a Map, an array and a canonicalised key per header) and a second decode of the
   * payload. Accepts exactly what decodeLean accepts on the decoded headers, and falls back (returns
   * undefined) on anything the client would read differently: a status line, a non-ASCII or
   * control character, a line without a colon, an invalid header name, a repeated attribute.
   */
  decodeLeanRaw(bytes: Uint8Array, headerLength: number): DecodedMessage | undefined {
    if (headerLength < HEADER_START.length + 2 || bytes.length <= headerLength) return undefined;
    let text: string;
    try {
      text = STRICT_UTF8.decode(bytes);
    } catch {
      return undefined;
    }
    // ASCII headers only, so the first headerLength characters are the header block: no decoded
    // character is shorter than its bytes unless the message has a non-ASCII one somewhere
    if (text.length !== bytes.length) {
      if (text.length < headerLength) return undefined;
      for (let i = 0; i < headerLength; i++) if (text.charCodeAt(i) > 127) return undefined;
    }
    if (!text.startsWith(HEADER_START) || !text.startsWith('\r\n\r\n', headerLength - 4))
      return undefined;
    const last = headerLength - 2;
    let seen = 0;
    let specversion: string | undefined;
    let id: string | undefined;
    let source: string | undefined;
    let type: string | undefined;
    let tenantId: string | undefined;
    for (let pos = HEADER_START.length; pos < last;) {
      const eol = text.indexOf('\r\n', pos);
      const colon = text.indexOf(':', pos);
      if (eol <= pos || colon <= pos || colon > eol) return undefined;
      // a bare CR or LF: the client splits lines on CRLF alone and refuses such a value
      if (text.indexOf('\r', pos) !== eol || text.indexOf('\n', pos) !== eol + 1) return undefined;
      if (!text.startsWith('ce-', pos)) {
        for (let i = pos; i < colon; i++) {
          const c = text.charCodeAt(i);
          if (c < 33 || c > 126) return undefined;
        }
        const lower = text.slice(pos, colon).toLowerCase();
        if (lower === 'content-type' || lower.startsWith('ce-')) return undefined;
        pos = eol + 2;
        continue;
      }
      const bit = attributeBit(text, pos + 3, colon);
      if (bit === 0 || (seen & bit) !== 0) return undefined;
      seen |= bit;
      const value = text.slice(colon + 1, eol).trim();
      pos = eol + 2;
      if (value.includes('%') || value.startsWith('"')) return undefined;
      switch (bit) {
        case BIT_SPECVERSION:
          specversion = value;
          break;
        case BIT_ID:
          id = value;
          break;
        case BIT_SOURCE:
          source = value;
          break;
        case BIT_TYPE:
          type = value;
          break;
        case BIT_TENANTID:
          tenantId = value;
          break;
        case BIT_TIME:
          if (!isCanonicalTimestamp(value)) return undefined;
          break;
        case BIT_DATACONTENTTYPE:
          if (value !== 'application/json') return undefined;
          break;
        case BIT_SUBJECT:
          if (value === '') return undefined;
          break;
        default:
        // traceparent, tracestate: any string
      }
    }
    return this.leanUsage(specversion, id, source, type, tenantId, text, headerLength);
  }

  /** The fast path, or undefined when the message needs the full decoder. */
  decodeLean(msg: NatsCloudEventMessage): DecodedMessage | undefined {
    const headers = msg.headers as unknown as Iterable<[string, string[]]> | undefined;
    if (!headers || msg.data.length === 0) return undefined;
    let specversion: string | undefined;
    let id: string | undefined;
    let source: string | undefined;
    let type: string | undefined;
    let tenantId: string | undefined;
    for (const [name, values] of headers) {
      if (!name.startsWith('ce-')) {
        const lower = name.toLowerCase();
        // content-type could switch the mode, a ce- header in another case is still an attribute
        if (lower === 'content-type' || lower.startsWith('ce-')) return undefined;
        continue;
      }
      const attribute = name.slice(3);
      if (!LEAN_ATTRIBUTES.has(attribute) || values.length !== 1) return undefined;
      const value = values[0]!;
      // percent-encoded or quoted: the binding decodes it (and may reject it)
      if (value.includes('%') || value.startsWith('"')) return undefined;
      switch (attribute) {
        case 'specversion':
          specversion = value;
          break;
        case 'id':
          id = value;
          break;
        case 'source':
          source = value;
          break;
        case 'type':
          type = value;
          break;
        case 'tenantid':
          tenantId = value;
          break;
        case 'time':
          if (!isCanonicalTimestamp(value)) return undefined;
          break;
        case 'datacontenttype':
          if (value !== 'application/json') return undefined;
          break;
        case 'subject':
          if (value === '') return undefined;
          break;
        default:
        // traceparent, tracestate: any string
      }
    }
    return this.leanUsage(specversion, id, source, type, tenantId, msg.data, 0);
  }

  /**
   * What both lean paths check once the headers are read: a 1.0 usage event with an id from a
   * known source, whose data (the text from `dataStart`, or the bytes, strict UTF-8) is a plain
   * usage record. The parsed object is kept as is: extra members are never read (the INSERT
   * names its columns).
   */
  private leanUsage(
    specversion: string | undefined,
    id: string | undefined,
    source: string | undefined,
    type: string | undefined,
    tenantId: string | undefined,
    data: string | Uint8Array,
    dataStart: number,
  ): DecodedMessage | undefined {
    if (
      specversion !== '1.0' ||
      !id ||
      type !== USAGE_TYPE ||
      source === undefined ||
      !this.knownSources.has(source)
    )
      return undefined;
    let record: unknown;
    try {
      record = JSON.parse(
        typeof data === 'string' ? data.slice(dataStart) : STRICT_UTF8.decode(data),
      );
    } catch {
      return undefined;
    }
    if (!isPlainUsageRecord(record)) return undefined;
    return { kind: 'usage', id, source, type, tenantId, record };
  }

  /** The CloudEvents binding and the catalog schema: exact, slower, and words every rejection. */
  decodeFull(msg: NatsCloudEventMessage): DecodedMessage {
    let decoded;
    try {
      decoded = decodeCloudEventDetailed(msg);
    } catch (err) {
      const code = err instanceof DomainError ? err.code : 'InvalidEvent';
      // what the headers say, for the dead-letter record (the event itself is not valid)
      const header = (name: string) => {
        const v = msg.headers?.get(name);
        return v ? { [name.slice(3)]: v } : {};
      };
      return {
        kind: 'poison',
        code,
        reason: (err as Error).message,
        ...header('ce-id'),
        ...header('ce-type'),
      };
    }
    const { event, attributes } = decoded;
    const tenantId = typeof attributes.tenantid === 'string' ? attributes.tenantid : undefined;
    const meta = {
      id: event.id,
      type: event.type,
      ...(tenantId === undefined ? {} : { tenantId }),
    };
    const definition = eventByType(event.type);
    if (!definition) {
      return {
        kind: 'poison',
        code: 'InvalidEvent',
        reason: `unknown event type "${event.type}" (not in the AOB event catalog)`,
        ...meta,
      };
    }
    const parsed = definition.schema.safeParse(event.data);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      return {
        kind: 'poison',
        code: 'InvalidEvent',
        reason: `data of ${event.type} does not match its schema: ${issues}`,
        ...meta,
      };
    }
    if (event.type === USAGE_TYPE) {
      if (this.knownSources.size < MAX_KNOWN_SOURCES) this.knownSources.add(event.source);
      return {
        kind: 'usage',
        id: event.id,
        source: event.source,
        type: event.type,
        tenantId,
        record: parsed.data as UsageRecord,
      };
    }
    if (IGNORED_TYPES.has(event.type))
      return { kind: 'other', id: event.id, type: event.type, tenantId };
    return {
      kind: 'poison',
      code: 'InvalidEvent',
      reason: `no handler for event type "${event.type}" on consumer METERING/metering`,
      ...meta,
    };
  }
}
