import pino, { type Logger } from 'pino';

/** Header and field paths never written to logs (credentials, keys, cookies). */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.apiKey',
  '*.password',
  '*.secret',
  '*.token',
];

export interface LoggerOptions {
  /** App name, logged as `app` on every line. */
  app: string;
  /** pino level. @default 'info' */
  level?: string;
}

/** The process logger: JSON lines on stdout, credentials redacted. */
export function createLogger(opts: LoggerOptions): Logger {
  return pino({
    level: opts.level ?? 'info',
    base: { app: opts.app, pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
