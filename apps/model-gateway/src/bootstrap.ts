import type { INestApplication } from '@nestjs/common';
import { bootstrapHttpApp } from '@aob/observability';
import { APP_NAME, AppModule, type ModelGatewayModuleOptions } from './app.module';
import type { ModelGatewayConfig } from './config';
import { sendOpenAiError } from './openai/openai-exception.filter';

export interface StartModelGatewayOptions extends ModelGatewayModuleOptions {
  /** @default config.PORT */
  port?: number;
  /** @default '0.0.0.0' */
  host?: string;
}

/** Builds and starts the HTTP app (main.ts, and tests that boot it in-process). */
export function startModelGateway(
  config: ModelGatewayConfig,
  opts: StartModelGatewayOptions = {},
): Promise<INestApplication> {
  return bootstrapHttpApp(AppModule.forRoot(config, opts), {
    app: APP_NAME,
    port: opts.port ?? config.PORT,
    ...(opts.host === undefined ? {} : { host: opts.host }),
    // OpenAI's error shape everywhere, body-parser errors included
    problemDetails: false,
    onBodyError: (err, req, res) => sendOpenAiError(err, req, res),
  });
}
