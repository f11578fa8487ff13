/**
 * The one typed configuration of lp-gateway. Only this module reads config files, the
 * environment and argv.
 *
 * Layers, later wins:
 *   built-in defaults (schema.ts)
 *   <- config/default.yaml (shipped; documents every key)
 *   <- an extra YAML file: -config path (or LP_CONFIG)
 *   <- environment: LP_ + flag name upper-cased (LP_HTTPADDR, LP_LIVEMAXVIEWERS); empty = not set
 *   <- CLI flags, Go flag syntax: -name value, -name=value, --name value, -bool, -bool=false
 *
 * Key naming: top-level YAML keys are go-livepeer's flag names; a key in a YAML section has the
 * flag `<section><Leaf>`: `live.maxViewers` <-> `-liveMaxViewers` <-> `LP_LIVEMAXVIEWERS`.
 *
 * Secrets (ethPassword, orchSecret, localOrchestrator.secret, live.whipAuthToken,
 * live.whepAuthToken, live.operatorToken, liveAIAuthApiKey, the *Headers flags, ICE
 * credentials) are `Secret` instances: JSON.stringify / util.inspect / String() print
 * `<hidden>`; call `.reveal()` to use the value. Errors show them as `<hidden>`.
 */
import { randomBytes } from 'node:crypto';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TranscodeProfile } from '../batch/profiles.ts';
import { type FlagLookup, parseArgv } from './argv.ts';
import type { CapabilityPrices } from './capability-prices.ts';
import { ConfigError, show } from './errors.ts';
import type { OrchestratorFault, RunnerBehaviour } from './fault.ts';
import { type IceServer, Invalid, type ListenAddr, type Raw } from './parse.ts';
import { type AnyKeyDef, BY_FLAG, closest, K, KEYS, type KeyDef, type NETWORKS } from './schema.ts';
import { Secret } from './secret.ts';
import { readYamlFile, type Setting } from './yaml.ts';

export type { CapabilityMaxPrice, CapabilityPrices, Ratio } from './capability-prices.ts';
export { ConfigError } from './errors.ts';
export type { OrchestratorFault, RunnerBehaviour } from './fault.ts';
export type { IceServer, ListenAddr } from './parse.ts';
export { Secret } from './secret.ts';

export type Network = (typeof NETWORKS)[number];
export type LogLevel = 'warn' | 'info' | 'debug' | 'trace';

/** All durations are in milliseconds; all prices and EVs are wei as bigint. */
export type Config = {
  /** -help / -h was given: print usage() and exit. The other fields are then best-effort. */
  readonly help: boolean;
  /** Absolute path of the -config file, if one was given. */
  readonly configFile: string | undefined;

  readonly httpAddr: ListenAddr;
  /** Normalised `https://host:port` URLs; empty = use the embedded local orchestrator. */
  readonly orchAddr: readonly string[];
  readonly orchWebhookUrl: string | undefined;
  /** Milliseconds between -orchWebhookUrl requests. */
  readonly orchWebhookRefreshInterval: number;
  readonly network: Network;
  /** Set whenever network is not `offchain`. */
  readonly ethUrl: string | undefined;
  /** Absolute path. */
  readonly ethKeystorePath: string | undefined;
  /** The password itself (read from the file when -ethPassword named a file). */
  readonly ethPassword: Secret | undefined;
  readonly ethController: `0x${string}` | undefined;
  /** Run as a remote signer rather than a gateway. */
  readonly remoteSigner: boolean;
  /** Gateway: the remote signer's origin (`https://host:port`); set = this gateway holds no key. */
  readonly remoteSignerUrl: string | undefined;
  /** Gateway: `Name:value,...` for every signer call (parse with config/header-list.ts). */
  readonly remoteSignerHeaders: Secret | undefined;
  /** Signer: the bearer token callers must send. */
  readonly remoteSignerAuthToken: Secret | undefined;
  readonly remoteSignerWebhookUrl: string | undefined;
  readonly remoteSignerWebhookHeaders: Secret | undefined;
  readonly remoteSignerAllowNoAuth: boolean;
  /** Milliseconds. */
  readonly remoteSignerStateTtl: number;
  readonly remoteDiscovery: boolean;
  /** Scale-out: the Redis every node shares (docs/scale-out.md); undefined = in-process. */
  readonly redisUrl: Secret | undefined;
  /** Scale-out: this node's base URL for other nodes and redirected viewers (no trailing slash). */
  readonly clusterNodeUrl: string | undefined;
  /** Milliseconds. */
  readonly clusterLeaseTtl: number;
  /** Wei per `pixelsPerUnit` pixels; 0n = no limit. */
  readonly maxPricePerUnit: bigint;
  /** >= 1n. */
  readonly pixelsPerUnit: bigint;
  /** Parsed and checked at start-up (go-livepeer's JSON format; see capability-prices.ts). */
  readonly maxPricePerCapability: CapabilityPrices | undefined;
  readonly maxTicketEV: bigint;
  /** >= maxTicketEV. */
  readonly maxTotalEV: bigint;
  readonly depositMultiplier: number;
  readonly ticketEV: bigint;
  /** Milliseconds. */
  readonly livePaymentInterval: number;
  /** Renditions of pushed segments (-transcodingOptions): where they came from, and the profiles. */
  readonly transcodingOptions: { readonly source: string; readonly profiles: readonly TranscodeProfile[] };
  readonly orchSecret: Secret | undefined;
  /** glog-style verbosity 0..6, and the pino level it maps to. */
  readonly v: number;
  readonly logLevel: LogLevel;
  readonly logFormat: 'auto' | 'json' | 'pretty';
  /** RTMP ingest address; undefined: off. */
  readonly rtmpAddr: ListenAddr | undefined;
  /** Where every stream's output is pushed over RTMP unless it has its own URL. */
  readonly liveRtmpOutput: string | undefined;
  readonly grpcTimeoutMs: number;
  /** Maximum GetOrchestrator calls in flight when refreshing orchestrator info. */
  readonly discoveryConcurrency: number;
  /** Milliseconds after which an orchestrator's cached GetOrchestrator answer is refreshed. */
  readonly orchInfoMaxAge: number;
  /** go-livepeer's -gatewayHost (host or host:port). */
  readonly gatewayHost: string | undefined;
  /** go-livepeer's live auth webhook, asked before each WHIP stream (docs/operator-guide.md). */
  readonly liveAIAuthWebhookUrl: string | undefined;
  readonly liveAIAuthApiKey: Secret | undefined;
  /** Milliseconds. */
  readonly liveAIAuthWebhookTimeout: number;
  readonly liveAIHeartbeatURL: string | undefined;
  /** 'Name:value,...' as given (parse with config/header-list.ts). */
  readonly liveAIHeartbeatHeaders: Secret | undefined;
  /** Milliseconds. */
  readonly liveAIHeartbeatInterval: number;
  readonly liveAIEventsWebhookUrl: string | undefined;
  readonly liveAIEventsWebhookHeaders: Secret | undefined;
  /** Milliseconds: the whole graceful shutdown, at most. */
  readonly shutdownTimeout: number;

  readonly localOrchestrator: {
    readonly serviceAddr: ListenAddr;
    /** Model ids advertised; each is also an effect name. */
    readonly models: readonly string[];
    readonly pricePerUnit: bigint;
    readonly pixelsPerUnit: bigint;
    readonly capacity: number;
    /** Random (32 bytes hex) when not configured. */
    readonly secret: Secret;
    /** For tests and demos only: how it should fail; `{ kind: 'none' }` by default. */
    readonly fault: OrchestratorFault;
    /** For tests and demos: how its live jobs behave like ai-runner pipelines (PLAIN_RUNNER by default). */
    readonly runner: RunnerBehaviour;
    /** Model ids served by the batch AI CPU stand-ins, per pipeline (empty: not offered). */
    readonly aiModels: {
      readonly 'text-to-image': readonly string[];
      readonly 'image-to-image': readonly string[];
      readonly upscale: readonly string[];
    };
    /** Concurrent batch AI requests per pipeline and model. */
    readonly aiCapacity: number;
  };
  readonly live: {
    readonly defaultModel: string;
    readonly minSegmentDurationMs: number;
    readonly pliIntervalMs: number;
    readonly maxViewers: number;
    readonly maxStreams: number;
    /** Per account (the publish Bearer token), across nodes; 0 = no limit. */
    readonly accountMaxStreams: number;
    readonly accountMaxViewers: number;
    readonly ingestTimeoutMs: number;
    readonly firstOutputTimeoutMs: number;
    readonly noOutputTimeoutMs: number;
    readonly maxSwaps: number;
    readonly swapWindowMs: number;
    readonly noOrchestratorGraceMs: number;
    readonly whipAuthToken: Secret | undefined;
    readonly whepAuthToken: Secret | undefined;
    /** /live/events, any stream's status, protected streams in /live/streams. */
    readonly operatorToken: Secret | undefined;
    /** Empty by default: no public STUN server is contacted unless configured. */
    readonly iceServers: readonly IceServer[];
    /** One UDP socket for every peer's ICE; undefined: a socket per peer. */
    readonly webrtcUdpAddr: ListenAddr | undefined;
    /** One TCP listener for every peer's ICE-TCP; undefined: no ICE-TCP. */
    readonly webrtcTcpAddr: ListenAddr | undefined;
    /** Announced in candidates instead of the machine's addresses (empty: not set). */
    readonly natIp: readonly string[];
    /** Base of absolute URLs in live replies (Livepeer-Playback-URL); undefined = the request's Host. */
    readonly publicUrl: string | undefined;
  };
  readonly http: {
    readonly bodyLimitBytes: number;
    /** Request bodies read at once, all routes; undefined = derived from the memory. */
    readonly bodyBudgetBytes: number | undefined;
  };
  /** Batch AI routes (src/http/batch-routes.ts); durations in milliseconds. */
  readonly ai: {
    readonly processingRetryTimeout: number;
    readonly maxTries: number;
    /** Until an orchestrator's response headers (a stream: also between events). */
    readonly tryTimeout: number;
    /** The whole reply once it started, and each result download. */
    readonly replyTimeout: number;
    readonly maxInFlight: number;
    readonly bodyLimitBytes: number;
    /** Absolute path; undefined = <tmpdir>/lp-gateway-results. */
    readonly resultDir: string | undefined;
    readonly resultTtl: number;
    readonly publicUrl: string | undefined;
  };
  /** Segment transcoding (src/http/transcode-routes.ts); durations in milliseconds. */
  readonly transcode: {
    readonly maxSegmentBytes: number;
    /** Pushes served at once; undefined = derived from the memory. */
    readonly maxInFlight: number | undefined;
    readonly maxAttempts: number;
    readonly hlsWindowSegments: number;
    readonly streamIdleTimeout: number;
    readonly hlsMaxStreams: number;
  };
};

export interface LoadConfigOptions {
  /** Arguments after the program name. Default: process.argv.slice(2). */
  argv?: readonly string[];
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Working directory for relative paths (-config, -maxPricePerCapability, -ethKeystorePath,
   * an -ethPassword file). When given, config/default.yaml is also looked up under it instead
   * of the project root. Default: process.cwd().
   */
  cwd?: string;
}

/** The project root: src/config/index.ts -> ../.. (also right for a build in dist/config/). */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const META_FLAGS = ['config', 'help', 'h'] as const;

const lookup: FlagLookup = {
  kind: (name) =>
    name === 'help' || name === 'h' || BY_FLAG.get(name)?.type === 'bool'
      ? 'bool'
      : name === 'config' || BY_FLAG.has(name)
        ? 'value'
        : undefined,
  suggest: (name) => closest(name, [...BY_FLAG.keys(), ...META_FLAGS]),
  secret: (name) => BY_FLAG.get(name)?.secret ?? false,
};

export function logLevelFor(v: number): LogLevel {
  if (v <= 0) return 'warn';
  if (v <= 3) return 'info';
  if (v <= 5) return 'debug';
  return 'trace';
}

/**
 * Loads, validates and freezes the configuration.
 * @throws ConfigError with a one-line message naming the offending key.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const argv = opts.argv ?? process.argv.slice(2);
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const parsed = parseArgv(argv, lookup);
  if (!parsed.help) return build(parsed.values, env, cwd, opts.cwd, false);
  try {
    return build(parsed.values, env, cwd, opts.cwd, true);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return build(new Map(), {}, cwd, undefined, true, true);
  }
}

function build(
  flags: ReadonlyMap<string, string>,
  env: NodeJS.ProcessEnv,
  cwd: string,
  rootOverride: string | undefined,
  help: boolean,
  builtinOnly = false,
): Config {
  const settings = new Map<string, Setting>();
  for (const k of KEYS)
    if (k.default !== undefined) settings.set(k.flag, { raw: k.default, source: undefined });

  let configFile: string | undefined;
  if (!builtinOnly) {
    const defaultYaml = resolve(rootOverride ?? PROJECT_ROOT, 'config', 'default.yaml');
    for (const [flag, s] of readYamlFile(defaultYaml, true)) settings.set(flag, s);

    const given = flags.get('config') ?? (env.LP_CONFIG ? env.LP_CONFIG : undefined);
    if (given !== undefined) {
      if (given.trim() === '')
        throw new ConfigError('config', 'must be a path to a YAML file, not empty', given);
      configFile = isAbsolute(given) ? given : resolve(cwd, given);
      for (const [flag, s] of readYamlFile(configFile, false, given)) settings.set(flag, s);
    }

    for (const k of KEYS) {
      const v = env[k.env];
      if (v !== undefined && v !== '') settings.set(k.flag, { raw: v, source: `env ${k.env}` });
    }
    for (const [flag, v] of flags) {
      if (BY_FLAG.has(flag)) settings.set(flag, { raw: v, source: `flag -${flag}` });
    }
  }

  const ctx = { cwd };
  const value = <T>(k: KeyDef<T>): T => {
    const s = settings.get(k.flag);
    if (s === undefined) return undefined as T;
    try {
      return k.parse(s.raw, ctx);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      throw new ConfigError(k.flag, err.message, show(err.got ?? s.raw, k.secret), s.source);
    }
  };
  /** A cross-field error; `source` is where the value that made it wrong came from. */
  const fail = (k: AnyKeyDef, problem: string, got: Raw | undefined, source?: string): never => {
    throw new ConfigError(k.flag, problem, show(got, k.secret), source);
  };
  const sourceOf = (k: AnyKeyDef) => settings.get(k.flag)?.source;

  const network = value(K.network);
  const ethUrl = value(K.ethUrl);
  if (network !== 'offchain' && ethUrl === undefined) {
    fail(K.ethUrl, `is required when -network=${network}`, undefined, sourceOf(K.network));
  }
  const maxTicketEV = value(K.maxTicketEV);
  const maxTotalEV = value(K.maxTotalEV);
  if (maxTotalEV < maxTicketEV) {
    fail(
      K.maxTotalEV,
      `must be at least -maxTicketEV (${maxTicketEV})`,
      settings.get(K.maxTotalEV.flag)?.raw,
    );
  }

  const remoteSigner = value(K.remoteSigner);
  const remoteSignerUrl = value(K.remoteSignerUrl);
  if (remoteSigner && network === 'offchain') {
    fail(
      K.remoteSigner,
      'needs an on-chain network: -network arbitrum-one-mainnet -ethUrl URL -ethKeystorePath FILE -ethPassword PASSWORD',
      'true',
      sourceOf(K.remoteSigner),
    );
  }
  if (remoteSignerUrl !== undefined) {
    if (remoteSigner) {
      fail(K.remoteSignerUrl, 'is for gateways; a -remoteSigner is the signer itself', remoteSignerUrl);
    }
    // A gateway that pays through a signer holds no key and reads no chain: refuse a half setup.
    if (network !== 'offchain') {
      fail(
        K.network,
        'must be offchain with -remoteSignerUrl: the remote signer holds the key and reads the chain, this gateway neither',
        network,
        sourceOf(K.network),
      );
    }
    for (const k of [K.ethKeystorePath, K.ethPassword]) {
      if (settings.get(k.flag)?.raw) {
        fail(
          k,
          'must not be set with -remoteSignerUrl: the key stays on the remote signer',
          settings.get(k.flag)?.raw,
          sourceOf(k),
        );
      }
    }
  }

  const httpAddr = value(K.httpAddr);
  const redisUrl = value(K.redisUrl);
  let clusterNodeUrl = value(K.clusterNodeUrl);
  if (redisUrl !== undefined && clusterNodeUrl === undefined) {
    // Other nodes and redirected viewers must reach this node: a wildcard address names none.
    if (httpAddr.host === '0.0.0.0' || httpAddr.host === '::') {
      fail(
        K.clusterNodeUrl,
        `is required with -redisUrl when -httpAddr listens on every interface (${httpAddr.addr}): other nodes need this node's own address`,
        undefined,
        sourceOf(K.redisUrl),
      );
    }
    const host = httpAddr.host.includes(':') ? `[${httpAddr.host}]` : httpAddr.host;
    clusterNodeUrl = `http://${host}:${httpAddr.port}`;
  }
  const orchAddr = value(K.orchAddr);
  const orchWebhookUrl = value(K.orchWebhookUrl);
  const serviceAddr = value(K.localOrchestratorServiceAddr);
  const models = value(K.localOrchestratorModels);
  const defaultModel = value(K.liveDefaultModel);
  if (
    orchAddr.length === 0 &&
    orchWebhookUrl === undefined &&
    !remoteSigner &&
    remoteSignerUrl === undefined
  ) {
    // The embedded local orchestrator will run: check it can serve the default model.
    if (models.length === 0) {
      fail(
        K.localOrchestratorModels,
        'must list at least one model when -orchAddr and -orchWebhookUrl are empty',
        '',
        sourceOf(K.localOrchestratorModels),
      );
    }
    if (!models.includes(defaultModel)) {
      fail(
        K.liveDefaultModel,
        `must be one of -localOrchestratorModels (${models.join(',')}) when -orchAddr and -orchWebhookUrl are empty`,
        defaultModel,
      );
    }
    if (httpAddr.port === serviceAddr.port && overlaps(httpAddr.host, serviceAddr.host)) {
      fail(
        K.localOrchestratorServiceAddr,
        `must not use the same port as -httpAddr (${httpAddr.addr})`,
        serviceAddr.addr,
      );
    }
  }

  const v = value(K.v);
  const config: Config = {
    help,
    configFile,
    httpAddr,
    orchAddr,
    orchWebhookUrl,
    orchWebhookRefreshInterval: value(K.orchWebhookRefreshInterval),
    network,
    ethUrl,
    ethKeystorePath: value(K.ethKeystorePath),
    ethPassword: value(K.ethPassword),
    ethController: value(K.ethController),
    remoteSigner,
    remoteSignerUrl,
    remoteSignerHeaders: value(K.remoteSignerHeaders),
    remoteSignerAuthToken: value(K.remoteSignerAuthToken),
    remoteSignerWebhookUrl: value(K.remoteSignerWebhookUrl),
    remoteSignerWebhookHeaders: value(K.remoteSignerWebhookHeaders),
    remoteSignerAllowNoAuth: value(K.remoteSignerAllowNoAuth),
    remoteSignerStateTtl: value(K.remoteSignerStateTtl),
    remoteDiscovery: value(K.remoteDiscovery),
    redisUrl,
    clusterNodeUrl,
    clusterLeaseTtl: value(K.clusterLeaseTtl),
    maxPricePerUnit: value(K.maxPricePerUnit),
    pixelsPerUnit: value(K.pixelsPerUnit),
    maxPricePerCapability: value(K.maxPricePerCapability),
    maxTicketEV,
    maxTotalEV,
    depositMultiplier: value(K.depositMultiplier),
    ticketEV: value(K.ticketEV),
    livePaymentInterval: value(K.livePaymentInterval),
    transcodingOptions: value(K.transcodingOptions),
    orchSecret: value(K.orchSecret),
    v,
    logLevel: logLevelFor(v),
    logFormat: value(K.logFormat),
    rtmpAddr: value(K.rtmpAddr),
    liveRtmpOutput: value(K.liveRtmpOutput),
    grpcTimeoutMs: value(K.grpcTimeoutMs),
    discoveryConcurrency: value(K.discoveryConcurrency),
    orchInfoMaxAge: value(K.orchInfoMaxAge),
    gatewayHost: value(K.gatewayHost),
    liveAIAuthWebhookUrl: value(K.liveAIAuthWebhookUrl),
    liveAIAuthApiKey: value(K.liveAIAuthApiKey),
    liveAIAuthWebhookTimeout: value(K.liveAIAuthWebhookTimeout),
    liveAIHeartbeatURL: value(K.liveAIHeartbeatURL),
    liveAIHeartbeatHeaders: value(K.liveAIHeartbeatHeaders),
    liveAIHeartbeatInterval: value(K.liveAIHeartbeatInterval),
    liveAIEventsWebhookUrl: value(K.liveAIEventsWebhookUrl),
    liveAIEventsWebhookHeaders: value(K.liveAIEventsWebhookHeaders),
    shutdownTimeout: value(K.shutdownTimeout),
    localOrchestrator: {
      serviceAddr,
      models,
      pricePerUnit: value(K.localOrchestratorPricePerUnit),
      pixelsPerUnit: value(K.localOrchestratorPixelsPerUnit),
      capacity: value(K.localOrchestratorCapacity),
      secret: value(K.localOrchestratorSecret) ?? new Secret(randomBytes(32).toString('hex')),
      fault: value(K.localOrchestratorFault),
      runner: {
        warmupMs: value(K.localOrchestratorWarmup),
        outputSize: value(K.localOrchestratorOutputSize),
        outputFps: value(K.localOrchestratorOutputFps),
        restarts: value(K.localOrchestratorRestarts),
        restartGapMs: value(K.localOrchestratorRestartGap),
        eventForm: value(K.localOrchestratorEventForm),
      },
      aiModels: {
        'text-to-image': value(K.localOrchestratorTextToImageModels),
        'image-to-image': value(K.localOrchestratorImageToImageModels),
        upscale: value(K.localOrchestratorUpscaleModels),
      },
      aiCapacity: value(K.localOrchestratorAiCapacity),
    },
    live: {
      defaultModel,
      minSegmentDurationMs: value(K.liveMinSegmentDurationMs),
      pliIntervalMs: value(K.livePliIntervalMs),
      maxViewers: value(K.liveMaxViewers),
      maxStreams: value(K.liveMaxStreams),
      accountMaxStreams: value(K.liveAccountMaxStreams),
      accountMaxViewers: value(K.liveAccountMaxViewers),
      ingestTimeoutMs: value(K.liveIngestTimeoutMs),
      firstOutputTimeoutMs: value(K.liveFirstOutputTimeoutMs),
      noOutputTimeoutMs: value(K.liveNoOutputTimeoutMs),
      maxSwaps: value(K.liveMaxSwaps),
      swapWindowMs: value(K.liveSwapWindowMs),
      noOrchestratorGraceMs: value(K.liveNoOrchestratorGraceMs),
      whipAuthToken: value(K.liveWhipAuthToken),
      whepAuthToken: value(K.liveWhepAuthToken),
      operatorToken: value(K.liveOperatorToken),
      iceServers: value(K.liveIceServers),
      webrtcUdpAddr: value(K.liveWebrtcUdpAddr),
      webrtcTcpAddr: value(K.liveWebrtcTcpAddr),
      natIp: value(K.liveNatIp),
      publicUrl: value(K.livePublicUrl),
    },
    http: {
      bodyLimitBytes: value(K.httpBodyLimitBytes),
      bodyBudgetBytes: value(K.httpBodyBudgetBytes),
    },
    ai: {
      processingRetryTimeout: value(K.aiProcessingRetryTimeout),
      maxTries: value(K.aiMaxTries),
      tryTimeout: value(K.aiTryTimeout),
      replyTimeout: value(K.aiReplyTimeout),
      maxInFlight: value(K.aiMaxInFlight),
      bodyLimitBytes: value(K.aiBodyLimitBytes),
      resultDir: value(K.aiResultDir),
      resultTtl: value(K.aiResultTtl),
      publicUrl: value(K.aiPublicUrl),
    },
    transcode: {
      maxSegmentBytes: value(K.transcodeMaxSegmentBytes),
      maxInFlight: value(K.transcodeMaxInFlight),
      maxAttempts: value(K.transcodeMaxAttempts),
      hlsWindowSegments: value(K.transcodeHlsWindowSegments),
      streamIdleTimeout: value(K.transcodeStreamIdleTimeout),
      hlsMaxStreams: value(K.transcodeHlsMaxStreams),
    },
  };
  // JSON.stringify(config) works (bigints as decimal strings, secrets as "<hidden>").
  Object.defineProperty(config, 'toJSON', { value: () => toPlain(config), enumerable: false });
  return deepFreeze(config);
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

function overlaps(a: string, b: string): boolean {
  return a === b || WILDCARDS.has(a) || WILDCARDS.has(b);
}

function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Secret) return value.toJSON();
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]));
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !(value instanceof Secret) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function describeDefault(k: AnyKeyDef): string {
  if (k.default === undefined) return '';
  if (Array.isArray(k.default)) return k.default.length === 0 ? '' : ` (default "${k.default.join(',')}")`;
  return k.default === '' ? '' : ` (default "${String(k.default)}")`;
}

/** Help text for -help, in the style of Go's flag.PrintDefaults. */
export function usage(): string {
  const lines = [
    'Usage: lp-gateway [flags]',
    '',
    'Flags are -name value, -name=value or --name value. Every flag can also be set with the',
    'environment variable LP_<NAME> (upper-cased, e.g. LP_HTTPADDR) or in YAML: top-level keys',
    'by flag name, and <section>.<key> for -<section><Key> (e.g. live.maxViewers for',
    '-liveMaxViewers). Precedence: flags > env > -config file > config/default.yaml > built-in.',
    'Durations: 500ms, 5s, 2m, 1m30s, or plain milliseconds. Prices and EVs: integer wei.',
    '',
    '  -config path',
    '    \tExtra YAML config file layered over config/default.yaml (env LP_CONFIG)',
    '  -help, -h',
    '    \tPrint this help and exit',
  ];
  let section = '';
  for (const k of KEYS) {
    const s = k.yaml.length === 2 ? k.yaml[0] : '';
    if (s !== section) {
      section = s;
      lines.push('', `${s} (YAML section "${s}:")`);
    }
    lines.push(`  -${k.flag} ${k.type}`, `    \t${k.help}${describeDefault(k)}`);
  }
  return `${lines.join('\n')}\n`;
}
