import './tracing';
import 'reflect-metadata';
import { startExecutor } from './bootstrap';
import { APP_NAME } from './app.module';
import { loadExecutorConfig } from './config';

async function main(): Promise<void> {
  await startExecutor(loadExecutorConfig());
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${APP_NAME} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
