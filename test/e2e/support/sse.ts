export interface SseEvent {
  id?: string;
  event: string;
  data: unknown;
}

/**
 * Reads a text/event-stream response until it ends or `until` says stop, parsing frames the way
 * the WHATWG EventSource does (comments ignored, multi-line data joined).
 */
export async function readSse(
  res: Response,
  opts: { until?: (e: SseEvent) => boolean; timeoutMs?: number; comments?: string[] } = {},
): Promise<SseEvent[]> {
  if (!res.body) throw new Error('no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  const timer = setTimeout(() => void reader.cancel(), opts.timeoutMs ?? 30_000);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let idx;
      while ((idx = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const frame = buffer.slice(0, idx);
        buffer = buffer.slice(buffer[idx] === '\r' ? idx + 4 : idx + 2);
        const e = parseFrame(frame, opts.comments);
        if (!e) continue;
        events.push(e);
        if (opts.until?.(e)) {
          await reader.cancel();
          return events;
        }
      }
    }
  } finally {
    clearTimeout(timer);
  }
  return events;
}

function parseFrame(frame: string, comments?: string[]): SseEvent | undefined {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of frame.split(/\r?\n/)) {
    if (line.startsWith(':')) {
      comments?.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return undefined;
  const text = data.join('\n');
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { id, event, data: parsed };
}
