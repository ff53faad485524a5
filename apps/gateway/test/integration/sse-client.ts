/** One parsed Server-Sent Event, or a comment line. */
export type SseItem =
  { kind: 'event'; id?: string; event: string; data: unknown } | { kind: 'comment'; text: string };

/**
 * Reads an SSE response body to its end (or until `until` says stop), parsing events and comments
 * per the HTML spec's field rules (enough of them for these tests).
 */
export async function readSse(
  res: Response,
  until?: (items: SseItem[]) => boolean,
  timeoutMs = 10_000,
): Promise<SseItem[]> {
  if (!res.body) throw new Error('no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const items: SseItem[] = [];
  let buffer = '';
  const timer = setTimeout(() => void reader.cancel(new Error('timeout')), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const fields: Record<string, string> = {};
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) {
            items.push({ kind: 'comment', text: line.slice(1).trim() });
            continue;
          }
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'data') data.push(value);
          else fields[name] = value;
        }
        if (data.length > 0) {
          items.push({
            kind: 'event',
            event: fields.event ?? 'message',
            ...(fields.id === undefined ? {} : { id: fields.id }),
            data: JSON.parse(data.join('\n')),
          });
        }
      }
      if (until?.(items)) {
        await reader.cancel();
        break;
      }
    }
  } finally {
    clearTimeout(timer);
  }
  return items;
}

export const eventsOf = (items: SseItem[]) =>
  items.filter((i): i is Extract<SseItem, { kind: 'event' }> => i.kind === 'event');
