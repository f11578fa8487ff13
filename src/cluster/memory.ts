// The single-node store (no -redisUrl): account slots counted in this process; every stream is
// this node's, so lookups of streams it does not hold find nothing, and nothing is shared.
import type { ClaimRefusal, ClusterStore, StreamLookup, StreamRecord } from './store.ts';

export class MemoryClusterStore implements ClusterStore {
  readonly shared = false;
  readonly nodeId = 'local';
  private readonly streams = new Map<string, StreamRecord>();
  private readonly viewers = new Map<string, Set<string>>();

  async claimStream(record: StreamRecord, accountLimit: number): Promise<ClaimRefusal | undefined> {
    if (this.streams.has(record.name)) return 'live';
    if (accountLimit > 0) {
      let n = 0;
      for (const r of this.streams.values()) if (r.account === record.account) n++;
      if (n >= accountLimit) return 'limit';
    }
    this.streams.set(record.name, record);
    return undefined;
  }

  async releaseStream(name: string): Promise<void> {
    this.streams.delete(name);
  }

  async claimViewer(account: string, viewer: string, limit: number): Promise<boolean> {
    let set = this.viewers.get(account);
    if (!set) {
      set = new Set();
      this.viewers.set(account, set);
    }
    if (limit > 0 && set.size >= limit) return false;
    set.add(viewer);
    return true;
  }

  async releaseViewer(account: string, viewer: string): Promise<void> {
    const set = this.viewers.get(account);
    set?.delete(viewer);
    if (set?.size === 0) this.viewers.delete(account);
  }

  async lookup(): Promise<StreamLookup> {
    return { state: 'unknown' };
  }

  shareSuspension(): void {}
  shareLatency(): void {}
  onSuspension(): () => void {
    return () => {};
  }
  onLatency(): () => void {
    return () => {};
  }
  async close(): Promise<void> {}
}
