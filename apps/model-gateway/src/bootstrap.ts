import type { IncomingMessage, ServerResponse } from 'node:http';
import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Express } from 'express';
import helmet from 'helmet';
import { PinoLogger } from 'nestjs-pino';
import { AuthGuard } from '@aob/auth';
import { bootstrapHttpApp } from '@aob/observability';
import { APP_NAME, AppModule, type ModelGatewayModuleOptions } from './app.module';
import { ChatCompletionsService } from './chat/chat-completions.service';
import type { ModelGatewayConfig } from './config';
import { chatFastPath, installChatFastPath } from './http/chat-fast-path';
import { ModelGatewayMetrics } from './metrics/model-gateway.metrics';
import { sendOpenAiError } from './openai/openai-exception.filter';
import { ModelQuotaService } from './quotas/model-quota.service';

export interface StartModelGatewayOptions extends ModelGatewayModuleOptions {
  /** @default config.PORT */
  port?: number;
  /** @default '0.0.0.0' */
  host?: string;
}

/** The express stack's body limit (`1mb`), in bytes. */
const BODY_LIMIT_BYTES = 1024 * 1024;

/** Builds and starts the HTTP app (main.ts, and tests that boot it in-process). */
export function startModelGateway(
  config: ModelGatewayConfig,
  opts: StartModelGatewayOptions = {},
): Promise<INestApplication> {
  return bootstrapHttpApp(AppModule.forRoot(config, opts), {
    app: APP_NAME,
    port: opts.port ?? config.PORT,
    ...(opts.host === undefined ? {} : { host: opts.host }),
    bodyLimit: '1mb',
    // OpenAI's error shape everywhere, body-parser errors included
    problemDetails: false,
    onBodyError: (err, req, res) => sendOpenAiError(err, req, res),
    configure: installFastPath,
  });
}

/** Serves `POST /v1/chat/completions` in front of express (see chatFastPath). */
function installFastPath(app: NestExpressApplication): void {
  const express: Express = app.getHttpAdapter().getInstance();
  installChatFastPath(
    app.getHttpServer(),
    chatFastPath({
      app: APP_NAME,
      guard: app.get(AuthGuard),
      chat: app.get(ChatCompletionsService),
      quotas: app.get(ModelQuotaService),
      metrics: app.get(ModelGatewayMetrics),
      securityHeaders: helmetHeaders(),
      bodyLimitBytes: BODY_LIMIT_BYTES,
      requestLog: () => PinoLogger.root,
      clientIp: (req) => clientIp(express, req),
    }),
  );
}

/** The headers helmet() sets on every answer of the express stack (they never vary). */
function helmetHeaders(): [string, string][] {
  const headers: [string, string][] = [];
  const res = {
    setHeader: (name: string, value: unknown) => headers.push([name, String(value)]),
    removeHeader: () => undefined,
  };
  helmet()({} as IncomingMessage, res as unknown as ServerResponse, () => undefined);
  return headers;
}

/** express's `req.ip` of a plain request: the same getter, the app's trust proxy setting. */
function clientIp(express: Express, req: IncomingMessage): string | undefined {
  const view = Object.create(express.request, {
    headers: { value: req.headers },
    socket: { value: req.socket },
    connection: { value: req.socket },
  }) as object;
  const ip: unknown = Reflect.get(express.request, 'ip', view);
  return typeof ip === 'string' ? ip : undefined;
}
