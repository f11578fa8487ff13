// Runs src/local-orchestrator/main.ts as a child process on 127.0.0.1 with a free port, for
// tests that need an orchestrator that can really die (fault exit-after) or be killed.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const MAIN = resolve(ROOT, 'src', 'local-orchestrator', 'main.ts');
// Whitespace after the URL, so that a URL cut between two stdout chunks is not taken.
const LISTENING = /^local orchestrator listening on (https:\/\/\S+)\s/m;
const KEEP_CHARS = 64 * 1024;
const KILL_GRACE_MS = 5000;

export interface SpawnLocalOrchestratorOptions {
  /** Default ['passthrough', 'invert']; the first one is also passed as -liveDefaultModel. */
  models?: string[];
  pricePerUnit?: bigint;
  /** A localOrchestrator.fault value, e.g. `stall-output-after:3s`. Default none. */
  fault?: string;
  capacity?: number;
  /** Start-up deadline (tsx compiles the sources first). Default 20 s. */
  startTimeoutMs?: number;
  /** Extra command-line flags. */
  args?: string[];
}

export interface LocalOrchestratorProcess {
  /** `https://127.0.0.1:PORT`: gRPC and HTTPS on one port, self-signed certificate. */
  url: string;
  pid: number;
  /** Sends `signal` (default SIGTERM; SIGKILL after 5 s if still alive); resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
  /** What the process wrote to stderr so far (its last 64 KiB). */
  stderr(): string;
}

/** Children still running; SIGKILLed if the test process exits with them alive. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

function tail(text: string): string {
  return text.length > KEEP_CHARS ? text.slice(-KEEP_CHARS) : text;
}

export async function spawnLocalOrchestrator(
  opts: SpawnLocalOrchestratorOptions = {},
): Promise<LocalOrchestratorProcess> {
  installExitHook();
  const models = opts.models ?? ['passthrough', 'invert'];
  const args = [
    ...['--import', 'tsx', MAIN],
    ...['-localOrchestratorServiceAddr', '127.0.0.1:0'],
    ...['-localOrchestratorModels', models.join(',')],
    ...['-liveDefaultModel', models[0]],
    ...['-localOrchestratorCapacity', String(opts.capacity ?? 4)],
    ...['-localOrchestratorPricePerUnit', String(opts.pricePerUnit ?? 0n)],
    ...['-localOrchestratorFault', opts.fault ?? 'none'],
    ...['-v', '1'],
    ...(opts.args ?? []),
  ];
  // The test run's own LP_* settings must not leak into the child.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LP_')));
  // The IPC channel lets the child notice this process going away, even when it is SIGKILLed.
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    stdout = tail(stdout + s);
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr = tail(stderr + s);
  });
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolveExit(code);
    });
  });
  // A failed spawn emits 'error' and maybe no 'exit'.
  const spawnError = new Promise<Error>((resolveError) => child.once('error', resolveError));

  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  const url = await new Promise<string>((resolveUrl, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      cleanup();
      void kill('SIGKILL');
      reject(
        new Error(
          `local orchestrator process ${why}; stderr: ${stderr.trim() || '<empty>'}; stdout: ${stdout.trim().slice(-2000) || '<empty>'}`,
        ),
      );
    };
    const onData = () => {
      const m = LISTENING.exec(stdout);
      if (!m) return;
      cleanup();
      resolveUrl(m[1]);
    };
    const timer = setTimeout(() => fail(`did not start within ${startTimeoutMs} ms`), startTimeoutMs);
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => fail(`exited with ${code ?? child.signalCode} before listening`));
    void spawnError.then((err) => fail(`could not be started: ${err.message}`));
  });

  return { url, pid: child.pid ?? -1, kill, exited, stderr: () => stderr };
}
