// Jest runs these tests as CommonJS, and the repo's scripts are ES modules Jest cannot load without
// --experimental-vm-modules; so the scripts are exercised in a real `node`, as npm and CI run them.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const repoRoot = path.resolve(__dirname, '../../../..');

export interface NodeRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node <args>` to completion; never rejects on a non-zero exit. */
export function runNode(
  args: string[],
  { env = process.env, cwd = repoRoot }: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env, cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      // A string code (ENOENT) or a kill by the timeout: node never ran to an exit code.
      if (err && typeof err.code !== 'number') {
        return reject(
          new Error(`node ${args[0] ?? ''} did not run to completion: ${err.message}`, {
            cause: err,
          }),
        );
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/**
 * Imports `script` (relative to the repo root) as `m` in a fresh node, awaits `expression`
 * (e.g. `m.checkServices()`), and returns its JSON round-trip. A rejection fails with its message.
 */
export async function callScript<T>(
  script: string,
  expression: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  const url = pathToFileURL(path.join(repoRoot, script)).href;
  const code =
    `import * as m from ${JSON.stringify(url)};\n` +
    `try { process.stdout.write(JSON.stringify({ ok: await (${expression}) })); }\n` +
    `catch (e) { process.stdout.write(JSON.stringify({ error: String(e?.message ?? e) })); }`;
  const run = await runNode(['--input-type=module', '-e', code], { env });
  if (run.code !== 0) throw new Error(`node exited ${run.code}: ${run.stderr}`);
  const out = JSON.parse(run.stdout) as { ok?: T; error?: string };
  if (out.error !== undefined) throw new Error(out.error);
  return out.ok as T;
}
