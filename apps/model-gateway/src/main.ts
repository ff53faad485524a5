import './tracing';
import 'reflect-metadata';
import { APP_NAME } from './app.module';
import { startModelGateway } from './bootstrap';
import { loadModelGatewayConfig } from './config';

async function main(): Promise<void> {
  await startModelGateway(loadModelGatewayConfig());
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${APP_NAME} failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
