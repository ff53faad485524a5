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

let destination: pino.DestinationStream | undefined;

/**
 * The one stdout destination of the process: asynchronous, because a synchronous write per log
 * line costs a syscall on the request path. Lines that arrive while a write is pending go out
 * together in the next one (no minimum length, so a quiet process still logs at once). Flushed at
 * exit; a process killed with SIGKILL may lose the lines of its last write.
 */
export function logDestination(): pino.DestinationStream {
  if (destination) return destination;
  const dest = pino.destination({ dest: 1, sync: false });
  const flush = () => {
    try {
      dest.flushSync();
    } catch {
      // a write still in flight: nothing more can be done at exit
    }
  };
  process.once('exit', flush);
  process.once('beforeExit', flush);
  destination = dest;
  return dest;
}

/** The process logger: JSON lines on stdout, credentials redacted. */
export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { app: opts.app, pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    logDestination(),
  );
}
