import './tracing';
import 'reflect-metadata';
import { bootstrapHttpApp } from '@aob/observability';
import { APP_NAME, AppModule } from './app.module';
import { loadDlqReplayerConfig } from './config';

async function main(): Promise<void> {
  const config = loadDlqReplayerConfig();
  await bootstrapHttpApp(AppModule.forRoot(config), { app: APP_NAME, port: config.PORT });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${APP_NAME} failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
