import './tracing';
import 'reflect-metadata';
import { ConfigError } from '@aob/config';
import { startGateway } from './app.module';
import { loadGatewayConfig } from './config';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  await startGateway(config);
}

main().catch((err: unknown) => {
  // The logger may not exist yet (bad config, unreachable dependency): say why on stderr.
  const message =
    err instanceof ConfigError
      ? err.message
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  process.stderr.write(`gateway failed to start: ${message}\n`);
  process.exit(1);
});
