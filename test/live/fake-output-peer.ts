// A viewer's peer for OutputHub unit tests: records what it is asked to send, and lets a test
// connect it, fill its socket queue, send keyframe requests or fail it.
import type { OutputPeer } from '../../src/live/output-hub.ts';
import type {
  EgressStats,
  KeyframeRequestListener,
  PeerState,
  StateListener,
} from '../../src/webrtc/index.ts';

export interface SentRtp {
  payload: Uint8Array;
  seq: number;
  timestamp: number;
  marker: boolean;
}

export class FakeOutputPeer implements OutputPeer {
  state: PeerState = 'connecting';
  canSend = false;
  /** What sendQueueBytes() reports. */
  queueBytes = 0;
  closed = false;
  readonly video: SentRtp[] = [];
  readonly audio: SentRtp[] = [];
  /** Packets refused because the peer could not send yet. */
  refused = 0;
  readonly #state = new Set<StateListener>();
  readonly #keyframe = new Set<KeyframeRequestListener>();

  sendVideo(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    if (!this.canSend) {
      this.refused++;
      return false;
    }
    this.video.push({ payload: payload.slice(), seq, timestamp, marker });
    return true;
  }

  sendVideoFrame(
    packets: readonly { payload: Uint8Array; marker: boolean }[],
    firstSeq: number,
    timestamp: number,
  ): boolean {
    for (let i = 0; i < packets.length; i++) {
      if (!this.sendVideo(packets[i].payload, (firstSeq + i) & 0xffff, timestamp, packets[i].marker))
        return false;
    }
    return true;
  }

  sendAudio(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): boolean {
    if (!this.canSend) return false;
    this.audio.push({ payload: payload.slice(), seq, timestamp, marker });
    return true;
  }

  sendQueueBytes(): number {
    return this.queueBytes;
  }

  onKeyframeRequest(listener: KeyframeRequestListener): () => void {
    this.#keyframe.add(listener);
    return () => this.#keyframe.delete(listener);
  }

  onStateChange(listener: StateListener): () => void {
    this.#state.add(listener);
    return () => this.#state.delete(listener);
  }

  stats(): EgressStats {
    const track = {
      ssrc: 1,
      packetsSent: this.video.length,
      bytesSent: 0,
      packetsDropped: this.refused,
      nacksReceived: 2,
      retransmittedPackets: 1,
      remotePacketsLost: 3,
      remoteFractionLost: 0.01,
      roundTripTimeSeconds: 0.042,
    };
    return { video: { ...track, plisReceived: 0, firsReceived: 0 } };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.canSend = false;
    this.#setState('closed');
  }

  /** ICE and DTLS are up: the hub may send from now on. */
  connect(): void {
    this.canSend = true;
    this.#setState('connected');
  }

  fail(): void {
    this.canSend = false;
    this.#setState('failed');
  }

  requestKeyframe(): void {
    for (const listener of [...this.#keyframe]) listener('pli');
  }

  #setState(state: PeerState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of [...this.#state]) listener(state);
  }
}
