import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import { UpstreamError } from './upstream-error';

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  /** JSON-serialised already. */
  body?: string;
  signal: AbortSignal;
  /** Longest wait for the response headers, then for each gap between body chunks. */
  idleTimeoutMs: number;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as it arrives; read it to the end or destroy it. */
  body: AsyncIterable<Buffer> & {
    text(): Promise<string>;
    json(): Promise<unknown>;
    destroy(err?: Error): unknown;
  };
}

export interface UpstreamHttpClientOptions {
  /** Idle keep-alive sockets are closed after this. @default 60000 */
  keepAliveTimeoutMs?: number;
}

/**
 * Keep-alive connection pools, one per upstream origin (undici `Pool`), so calls reuse warm
 * sockets instead of paying TCP and TLS set-up per request. Aborting a request's signal destroys
 * its socket, which is how an upstream learns that the client left.
 */
export class UpstreamHttpClient {
  private readonly pools = new Map<string, Pool>();
  private readonly connections = new Map<string, number>();
  private readonly keepAliveTimeoutMs: number;

  constructor(opts: UpstreamHttpClientOptions = {}) {
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 60_000;
  }

  /** Sizes the pool of `origin`: call once per deployment before the first request. */
  reserve(origin: string, connections: number): void {
    this.connections.set(origin, (this.connections.get(origin) ?? 0) + connections);
  }

  /**
   * Sends one request. Resolves once the status and headers are in, whatever the status.
   * @throws UpstreamError `connection` or `timeout`; the signal's abort error when it aborts
   */
  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const pool = this.pool(req.url.origin);
    try {
      const res = await pool.request({
        method: req.method,
        path: req.url.pathname + req.url.search,
        headers: req.headers,
        body: req.body ?? null,
        signal: req.signal,
        headersTimeout: req.idleTimeoutMs,
        bodyTimeout: req.idleTimeoutMs,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw asUpstreamError(err, req.signal);
    }
  }

  /** Closes every pool; requests still running are cut. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.connections.get(origin) ?? 64,
        keepAliveTimeout: this.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.keepAliveTimeoutMs,
        pipelining: 1,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }
}

/**
 * undici's errors in routing terms. The signal's own abort (client gone, or our timeout) passes
 * through untouched: the caller knows why it aborted.
 */
export function asUpstreamError(err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return err;
  if (err instanceof UpstreamError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new UpstreamError('timeout', `upstream did not answer in time (${message})`, {
      cause: err,
    });
  }
  return new UpstreamError(
    'connection',
    `upstream connection failed: ${typeof code === 'string' ? `${code} ` : ''}${message}`,
    { cause: err },
  );
}
