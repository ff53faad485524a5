/** W3C trace context `traceparent`: version-traceid-parentid-flags, lower-case hex. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The request's traceparent when it is valid, else undefined (an invalid one is dropped, as the
 * W3C spec asks, rather than failing the request).
 */
export function validTraceparent(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, parentId] = m;
  if (version === 'ff' || /^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return undefined;
  return value.trim();
}
