// Runs `bin/lp-gateway.js` (a gateway, or a -remoteSigner) as a child process, as a user starts
// it: for tests that need what a real process shows (its arguments, its output, its exit).
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = resolve(ROOT, 'bin', 'lp-gateway.js');
const KEEP_CHARS = 256 * 1024;

export interface LpProcess {
  args: readonly string[];
  pid: number;
  /** Everything written so far (the last 256 KiB of each). */
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  /** SIGTERM (SIGKILL after 5 s); resolves once it has exited. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (our flags take no port 0 for -httpAddr). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** Starts `lp-gateway start <args>` with no LP_* variables from the test run. */
export function spawnLp(args: readonly string[]): LpProcess {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LP_')));
  const child = spawn(process.execPath, [BIN, 'start', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  const keep = (s: string) => (s.length > KEEP_CHARS ? s.slice(-KEEP_CHARS) : s);
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out = keep(out + s);
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err = keep(err + s);
  });
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      live.delete(child);
      r(code);
    }),
  );
  return {
    args,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exited,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until stdout shows `ready`; rejects with the output when it exits first or takes too long. */
export async function untilReady(p: LpProcess, ready: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void p.exited.then(() => {
    exited = true;
  });
  while (!p.stdout().includes(ready)) {
    if (exited || Date.now() > deadline) {
      await p.kill();
      throw new Error(
        `lp-gateway ${exited ? 'exited' : 'did not get ready'}: stderr: ${p.stderr().slice(-3000)} stdout: ${p.stdout().slice(-3000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
