/**
 * The matched route template of an express request (`/v1/runs/:runId`), never the raw URL: ids
 * in paths would explode metric label cardinality and span names. `undefined` when no route matched.
 */
export function routeTemplate(req: object): string | undefined {
  const r = req as { route?: { path?: unknown }; baseUrl?: unknown };
  const path = r.route?.path;
  if (typeof path !== 'string') return undefined;
  return (typeof r.baseUrl === 'string' ? r.baseUrl : '') + path;
}
