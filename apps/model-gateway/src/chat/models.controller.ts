import { Controller, Get, Param } from '@nestjs/common';
import { RequirePermission } from '@aob/auth';
import { modelNotFound } from '../openai/openai-errors';
import { Router } from '../routing/router';

interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** OpenAI's model list: deployment names, aliases and served tiers, all valid as `model`. */
@Controller('v1/models')
export class ModelsController {
  constructor(private readonly router: Router) {}

  @Get()
  @RequirePermission('models:invoke')
  list(): { object: 'list'; data: ModelObject[] } {
    return { object: 'list', data: this.models() };
  }

  @Get(':model')
  @RequirePermission('models:invoke')
  get(@Param('model') id: string): ModelObject {
    const found = this.models().find((m) => m.id === id);
    if (!found) throw modelNotFound(id);
    return found;
  }

  private models(): ModelObject[] {
    return this.router
      .models()
      .map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.ownedBy }));
  }
}
