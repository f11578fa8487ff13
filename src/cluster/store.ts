// What gateway nodes share (docs/scale-out.md): which node owns each live stream, per-account
// stream and viewer slots, and what each node learns about orchestrators. One interface, two
// implementations: in this process (no -redisUrl, a single node) and in Redis (several nodes).

/** A live stream as every node sees it: who owns it and where to send its requests. */
export interface StreamRecord {
  name: string;
  /** go-livepeer's stream id, when it differs from the name (status may be asked by it). */
  streamId?: string;
  /** The owning node's id and base URL (-clusterNodeUrl). */
  node: string;
  nodeUrl: string;
  /** The account its slots count against (see accountOf in registry.ts). */
  account: string;
}

/** What a node that does not hold a stream learns about it. */
export type StreamLookup =
  | { state: 'live'; record: StreamRecord }
  /** Ended on its node (reason given), or its node was lost (leases expired: reason 'node lost'). */
  | { state: 'ended'; reason: string; nodeLost: boolean }
  | { state: 'unknown' };

/** Why a claim was refused. */
export type ClaimRefusal = 'live' | 'limit';

/** An orchestrator suspension one node decided, for the others to apply. */
export interface SharedSuspension {
  url: string;
  reason: string;
  /** Epoch ms. */
  until: number;
  failures: number;
}

/** One GetOrchestrator round trip one node measured (the latency term of selection's score). */
export interface SharedLatency {
  url: string;
  ms: number;
}

/** Redis could not be asked (down, unreachable, too slow): new work is refused with 503. */
export class ClusterUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterUnavailable';
  }
}

export interface ClusterStore {
  /** True when other nodes share it (Redis); false in-process. */
  readonly shared: boolean;
  readonly nodeId: string;
  /**
   * Claims `record.name` for this node, and a stream slot of its account when `accountLimit` > 0.
   * @returns undefined when claimed, else why not.
   * @throws ClusterUnavailable
   */
  claimStream(record: StreamRecord, accountLimit: number): Promise<ClaimRefusal | undefined>;
  /** Gives the stream up, saying why it ended (other nodes answer 404 with it). Never throws. */
  releaseStream(name: string, reason: string): Promise<void>;
  /**
   * A viewer slot of `account` (limit > 0); false when the account has its viewers.
   * @throws ClusterUnavailable
   */
  claimViewer(account: string, viewer: string, limit: number): Promise<boolean>;
  releaseViewer(account: string, viewer: string): Promise<void>;
  /**
   * A stream this node does not hold, by name or go-livepeer stream id.
   * @throws ClusterUnavailable
   */
  lookup(key: string): Promise<StreamLookup>;
  /** Tells the other nodes (no-op in-process). */
  shareSuspension(s: SharedSuspension): void;
  shareLatency(l: SharedLatency): void;
  /** What the other nodes share; returns the unsubscribe. */
  onSuspension(fn: (s: SharedSuspension) => void): () => void;
  onLatency(fn: (l: SharedLatency) => void): () => void;
  /** Waits for releases under way, then disconnects. */
  close(): Promise<void>;
}
