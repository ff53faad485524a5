import './tracing';
import 'reflect-metadata';
import { ConfigError } from '@aob/config';
import { APP_NAME, startMetering } from './app.module';
import { loadMeteringConfig } from './config';

async function main(): Promise<void> {
  await startMetering(loadMeteringConfig());
}

main().catch((err: unknown) => {
  // The logger may not exist yet (bad config, unreachable dependency): say why on stderr.
  const message =
    err instanceof ConfigError
      ? err.message
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  process.stderr.write(`${APP_NAME} failed to start: ${message}\n`);
  process.exit(1);
});
