import type { Deployment } from './catalog.schema';

/**
 * USD cost of one call at the deployment's catalog prices. Rounded to 1e-10 USD so sums of
 * float products do not print as 0.000012300000000000001.
 */
export function costUsd(
  deployment: Pick<Deployment, 'inputCostPer1M' | 'outputCostPer1M'>,
  usage: { promptTokens: number; completionTokens: number },
): number {
  const raw =
    (usage.promptTokens * deployment.inputCostPer1M +
      usage.completionTokens * deployment.outputCostPer1M) /
    1_000_000;
  return Math.round(raw * 1e10) / 1e10;
}
