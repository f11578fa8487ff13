// There is no Docker engine here or in CI: the Dockerfile and docker-compose.yml are checked as
// text. The Dockerfile's instructions must be known ones, with a build stage and a runtime stage,
// a non-root user, ffmpeg, sources that exist; the compose file's services, ports and secrets must
// fit together, and every service's command must load through the gateway's own config loader.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/index.ts';
import { BY_FLAG } from '../../src/config/schema.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const KNOWN = new Set([
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
]);

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** The Dockerfile's instructions (comments dropped, `\` continuations joined). */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (!pending) start = i + 1;
    if (line.startsWith('#')) return;
    pending += `${line.replace(/\\$/, '')} `;
    if (line.endsWith('\\')) return;
    const [op, ...rest] = pending.trim().split(/\s+/);
    out.push({ op: op!, args: rest.join(' '), line: start });
    pending = '';
  });
  if (pending) throw new Error('the last instruction ends with a continuation');
  return out;
}

/** Everything wrong with a Dockerfile for lp-gateway (empty: fine). */
function dockerfileProblems(text: string, exists: (p: string) => boolean): string[] {
  const problems: string[] = [];
  let ins: Instruction[];
  try {
    ins = instructions(text);
  } catch (err) {
    return [(err as Error).message];
  }
  for (const i of ins) if (!KNOWN.has(i.op)) problems.push(`line ${i.line}: unknown instruction ${i.op}`);
  if (ins[0]?.op !== 'FROM' && ins[0]?.op !== 'ARG') problems.push('must start with FROM');
  const stages: string[] = [];
  let last: Instruction[] = [];
  for (const i of ins) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      if (!m) problems.push(`line ${i.line}: FROM image [AS name]`);
      stages.push(m?.[2] ?? '');
      last = [];
    }
    last.push(i);
    if (i.op === 'COPY' || i.op === 'ADD') {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice(7);
      const paths = words.filter((w) => !w.startsWith('--'));
      if (paths.length < 2) problems.push(`line ${i.line}: ${i.op} needs a source and a destination`);
      if (from !== undefined) {
        if (!stages.slice(0, -1).includes(from)) problems.push(`line ${i.line}: no earlier stage "${from}"`);
      } else {
        for (const p of paths.slice(0, -1))
          if (!exists(p)) problems.push(`line ${i.line}: ${p} is not in the project`);
      }
    }
  }
  if (stages.length < 2) problems.push('must be multi-stage (two FROM or more)');
  const user = last.filter((i) => i.op === 'USER').at(-1);
  if (!user) problems.push('the runtime stage must set USER');
  else if (/^(root|0)(:|$)/.test(user.args)) problems.push('the runtime stage must not run as root');
  if (!last.some((i) => i.op === 'RUN' && /apt-get install .*\bffmpeg\b/.test(i.args)))
    problems.push('the runtime stage must install ffmpeg');
  const entry = last.find((i) => i.op === 'ENTRYPOINT');
  let argv: unknown;
  try {
    argv = entry && JSON.parse(entry.args);
  } catch {
    problems.push('ENTRYPOINT must be a JSON array (exec form: signals reach the gateway)');
  }
  if (entry && JSON.stringify(argv) !== JSON.stringify(['node', 'bin/lp-gateway.js', 'start']))
    problems.push('ENTRYPOINT must run `lp-gateway start` (npm start)');
  if (!entry) problems.push('the runtime stage needs an ENTRYPOINT');
  return problems;
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const inContext = (p: string) => existsSync(join(ROOT, p)) && !ignored.includes(p.replace(/^\.\/|\/$/g, ''));

describe('Dockerfile', () => {
  it('is multi-stage, runs as a non-root user, has ffmpeg, and copies only what exists', () => {
    expect(dockerfileProblems(dockerfile, inContext)).toEqual([]);
  });

  it("its CMD flags load through the gateway's config, listening where EXPOSE says", () => {
    const ins = instructions(dockerfile);
    const cmd = JSON.parse(ins.filter((i) => i.op === 'CMD').at(-1)!.args) as string[];
    const config = loadConfig({ argv: cmd, env: {}, cwd: ROOT });
    expect(config.httpAddr.host).toBe('0.0.0.0');
    const exposed = ins.filter((i) => i.op === 'EXPOSE').map((i) => Number(i.args));
    expect(exposed).toContain(config.httpAddr.port);
  });

  it('the check fails on what it must refuse', () => {
    const ok = () => true;
    expect(dockerfileProblems('FROM node:20\nUSER node\nRUN apt-get install -y ffmpeg\n', ok)).toContain(
      'must be multi-stage (two FROM or more)',
    );
    const asRoot = dockerfile.replace('USER node', 'USER root');
    expect(dockerfileProblems(asRoot, inContext)).toContain('the runtime stage must not run as root');
    expect(dockerfileProblems(dockerfile.replace('WORKDIR /app', 'WORKDIRR /app'), inContext)[0]).toMatch(
      /unknown instruction WORKDIRR/,
    );
    expect(dockerfileProblems(dockerfile.replace('--from=deps', '--from=nope'), inContext)).toContain(
      `line ${instructions(dockerfile).find((i) => i.args.includes('--from=deps'))!.line}: no earlier stage "nope"`,
    );
    expect(
      dockerfileProblems(dockerfile.replace('COPY src ./src', 'COPY srcs ./src'), inContext).join(),
    ).toMatch(/srcs is not in the project/);
    expect(
      dockerfileProblems(
        dockerfile.replace('--no-install-recommends ffmpeg', '--no-install-recommends curl'),
        inContext,
      ),
    ).toContain('the runtime stage must install ffmpeg');
  });
});

type Service = {
  build?: string;
  image?: string;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  depends_on?: string[];
  secrets?: string[];
};
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
};

/** Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with these values. */
function interpolate(s: string, env: Record<string, string>): string {
  return s.replace(/\$\{(\w+)(?::?[-?]([^}]*))?\}/g, (_, name: string, dflt?: string) => {
    if (env[name] !== undefined) return env[name]!;
    if (dflt !== undefined && !/^set /.test(dflt)) return dflt;
    throw new Error(`\${${name}} has no value`);
  });
}

const ENV = { ETH_URL: 'http://127.0.0.1:8545', SIGNER_TOKEN: 'token-1234' };

/** A service's command as the container gets it, secret files made real in a temp dir. */
function argvOf(name: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'lp-compose-'));
  return compose.services[name]!.command!.map((a) => {
    const v = interpolate(String(a), ENV);
    const secret = /^\/run\/secrets\/(\w+)$/.exec(v);
    if (!secret) return v;
    const file = join(dir, secret[1]!);
    writeFileSync(file, 'secret\n');
    return file;
  });
}

describe('docker-compose.yml', () => {
  it('has Redis, a signer, the local orchestrator and two gateways, built from this Dockerfile', () => {
    const names = Object.keys(compose.services).sort();
    expect(names).toEqual(['gateway-1', 'gateway-2', 'orchestrator', 'redis', 'signer']);
    for (const name of names.filter((n) => n !== 'redis')) {
      expect(compose.services[name]!.build, name).toBe('.');
      expect(compose.services[name]!.image, name).toBe('lp-gateway:local');
    }
    expect(compose.services.redis!.image).toMatch(/^redis:/);
    expect(compose.services.redis!.command).toEqual(['redis-server', '--save', '', '--appendonly', 'no']);
    for (const g of ['gateway-1', 'gateway-2'])
      expect(compose.services[g]!.depends_on).toEqual(
        expect.arrayContaining(['redis', 'signer', 'orchestrator']),
      );
  });

  it("every command's flags are the gateway's own and load through its config", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'redis') continue;
      for (const a of service.command ?? []) {
        const flag = /^-{1,2}(\w+)$/.exec(String(a))?.[1];
        if (flag) expect(BY_FLAG.has(flag), `${name}: -${flag}`).toBe(true);
      }
    }
    const gateways = ['gateway-1', 'gateway-2'].map((g) =>
      loadConfig({ argv: argvOf(g), env: {}, cwd: ROOT }),
    );
    for (const c of gateways) {
      expect(c.redisUrl?.reveal()).toBe('redis://redis:6379');
      expect(c.remoteSignerUrl).toBe('http://signer:8935');
      expect(c.orchAddr).toEqual(['https://orchestrator:8936']);
    }
    expect(gateways.map((c) => c.clusterNodeUrl)).toEqual(['http://gateway-1:8935', 'http://gateway-2:8935']);
    const signer = loadConfig({ argv: argvOf('signer'), env: {}, cwd: ROOT });
    expect(signer.remoteSigner).toBe(true);
    expect(signer.remoteSignerAuthToken?.reveal()).toBe(ENV.SIGNER_TOKEN);
    const orch = loadConfig({ argv: argvOf('orchestrator'), env: {}, cwd: ROOT });
    expect(orch.localOrchestrator.serviceAddr.port).toBe(8936);
    expect(compose.services.orchestrator!.entrypoint?.at(-1)).toBe('src/local-orchestrator/main.ts');
    expect(existsSync(join(ROOT, 'src/local-orchestrator/main.ts'))).toBe(true);
  });

  it('published ports are distinct and reach what the commands listen on; secrets are declared', () => {
    const hostPorts: string[] = [];
    for (const [name, service] of Object.entries(compose.services)) {
      const argv = service.command?.map((a) => String(a)) ?? [];
      const listening = new Set<string>();
      for (const [i, a] of argv.entries()) {
        if (a === '-httpAddr') listening.add(`${argv[i + 1]!.split(':')[1]}/tcp`);
        if (a === '-liveWebrtcUdpAddr') listening.add(`${argv[i + 1]!.split(':')[1]}/udp`);
      }
      for (const p of service.ports ?? []) {
        const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(p);
        expect(m, `${name}: port ${p}`).not.toBeNull();
        const proto = m![3] ?? 'tcp';
        hostPorts.push(`${m![1]}/${proto}`);
        expect(listening.has(`${m![2]}/${proto}`), `${name} listens on ${m![2]}/${proto}`).toBe(true);
      }
      for (const s of service.secrets ?? []) expect(compose.secrets[s], `${name}: secret ${s}`).toBeDefined();
    }
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    expect(hostPorts.length).toBeGreaterThanOrEqual(2);
  });

  it('a command with no value for a required variable is refused', () => {
    // \x24 is "$": compose's syntax, not a template literal's.
    expect(() => interpolate('\x24{ETH_URL:?set ETH_URL}', {})).toThrow('\x24{ETH_URL} has no value');
    expect(interpolate('\x24{GATEWAY_1_URL:-http://gateway-1:8935}', {})).toBe('http://gateway-1:8935');
  });
});
