import { Controller, Get, Header } from '@nestjs/common';
import { Public } from '@aob/auth';
import { buildOpenApiDocument, type OpenApiDocument } from './openapi-document';

@Public()
@Controller()
export class OpenApiController {
  private readonly document = buildOpenApiDocument();

  @Get('openapi.json')
  @Header('Cache-Control', 'public, max-age=300')
  get(): OpenApiDocument {
    return this.document;
  }
}
