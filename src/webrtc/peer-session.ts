// One answering werift RTCPeerConnection with the lifecycle both peers share: non-trickle answer,
// a four-state view of the connection, and timeouts werift does not have.
import type { Logger } from 'pino';
import {
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  type RTCRtpHeaderExtensionParameters,
  type RTCRtpTransceiver,
} from 'werift';
import { type PeerNetworkOptions, weriftNetworkConfig } from './network.ts';
import { finishAnswer, OfferRejectedError, type RewrittenOffer } from './sdp.ts';

export type PeerState = 'connecting' | 'connected' | 'failed' | 'closed';

/** A codec as it stands in the answer. */
export interface NegotiatedCodec {
  payloadType: number;
  mimeType: string;
  clockRate: number;
  channels?: number;
  /** The a=fmtp value, as offered. */
  fmtp?: string;
}

export type StateListener = (state: PeerState) => void;

/** Answering failed on our side (werift, sockets): a 500 for the client, the cause for the log. */
export class AnswerFailedError extends Error {
  override name = 'AnswerFailedError';
  constructor(cause: unknown) {
    super('could not answer the offer', { cause });
  }
}

export interface PeerTimeoutOptions {
  /** Longest wait for ICE gathering before answering with the candidates found so far. Default 3000 ms. */
  gatherTimeoutMs?: number;
  /** 'failed' if ICE + DTLS are not up this long after the answer. Default 15000 ms. */
  connectTimeoutMs?: number;
  /**
   * 'failed' when nothing at all (STUN, DTLS, RTP, RTCP) arrives from the remote for this long once
   * connected. werift alone notices a vanished peer only by RFC 7675 consent expiry, 30 s, not
   * configurable. Browsers send a consent check every ~5 s, so keep this above 6 s. Default 15000 ms.
   */
  inactivityTimeoutMs?: number;
}

export interface PeerOptions extends PeerNetworkOptions, PeerTimeoutOptions {
  logger?: Logger;
}

export const DEFAULT_GATHER_TIMEOUT_MS = 3000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
export const DEFAULT_INACTIVITY_TIMEOUT_MS = 15_000;

export interface AnswerParams {
  offerSdp: string;
  codecs: { video: RTCRtpCodecParameters[]; audio: RTCRtpCodecParameters[] };
  headerExtensions?: { video: RTCRtpHeaderExtensionParameters[]; audio: RTCRtpHeaderExtensionParameters[] };
  /** Runs after the offer is applied, before the answer is made (pick transceivers, set directions). */
  prepare: (pc: RTCPeerConnection) => void;
}

export class PeerSession {
  readonly pc: RTCPeerConnection;
  /** Date.now() of the last datagram of any kind from the remote; undefined before the first. */
  lastInboundAt: number | undefined;
  readonly #log: Logger | undefined;
  readonly #timeouts: Required<PeerTimeoutOptions>;
  readonly #listeners = new Set<StateListener>();
  #state: PeerState = 'connecting';
  #connectTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  readonly #unsubscribes: (() => void)[] = [];

  private constructor(config: RTCPeerConnectionConfig, opts: PeerOptions) {
    this.#log = opts.logger;
    this.#timeouts = {
      gatherTimeoutMs: opts.gatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      inactivityTimeoutMs: opts.inactivityTimeoutMs ?? DEFAULT_INACTIVITY_TIMEOUT_MS,
    };
    this.pc = new RTCPeerConnection({
      ...config,
      // Consent checks arrive as STUN requests, which never reach the data path: count them here.
      iceFilterStunResponse: () => {
        this.lastInboundAt = Date.now();
        return true;
      },
    });
  }

  /** Applies the offer and returns the session with its complete (non-trickle) answer. */
  static async answer(
    params: AnswerParams,
    opts: PeerOptions,
  ): Promise<{ session: PeerSession; answerSdp: string }> {
    const session = new PeerSession(
      {
        ...weriftNetworkConfig(opts),
        codecs: params.codecs,
        headerExtensions: params.headerExtensions ?? { video: [], audio: [] },
        // As answerer we follow the offer's BUNDLE group (browsers, OBS: one transport for all).
        bundlePolicy: 'max-compat',
      },
      opts,
    );
    const { pc } = session;
    try {
      // Offers that arrive together would otherwise be checked and handed to werift in one turn of
      // the loop; a turn between the two lets media and timers through.
      await new Promise((resolve) => setImmediate(resolve));
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: params.offerSdp });
      } catch (err) {
        // sdp-parse.ts checked the offer first; if werift still refuses it, the offer is the cause.
        opts.logger?.warn({ err }, 'webrtc: werift refused a checked offer');
        throw new OfferRejectedError(400, 'the offer could not be applied');
      }
      params.prepare(pc);
      await pc.setLocalDescription(await pc.createAnswer());
      await session.#waitForGathering();
      const local = pc.localDescription;
      if (!local) throw new Error('werift produced no local description');
      session.#watch();
      return { session, answerSdp: finishAnswer(local.sdp) };
    } catch (err) {
      await session.close();
      if (err instanceof OfferRejectedError) throw err;
      // werift's messages are not for clients: they get a generic 500, the log gets the cause.
      opts.logger?.error({ err }, 'webrtc: could not answer an offer');
      throw new AnswerFailedError(err);
    }
  }

  get state(): PeerState {
    return this.#state;
  }

  onStateChange(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopTimers();
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    const transports = this.pc.iceTransports;
    try {
      await this.pc.close();
    } catch (err) {
      this.#log?.warn({ err }, 'webrtc: error closing peer connection');
    }
    // pc.close() stops the transports it still knows about; make sure none survives.
    await Promise.allSettled(transports.map((t) => t.connection.close()));
    // dgram's 'close' event comes before libuv releases the handle; one timer turn lets it finish.
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.#setState('closed');
    this.#listeners.clear();
  }

  async #waitForGathering(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#log?.warn({ timeoutMs: this.#timeouts.gatherTimeoutMs }, 'webrtc: ICE gathering timed out');
        done();
      }, this.#timeouts.gatherTimeoutMs);
      const { unSubscribe } = this.pc.iceGatheringStateChange.subscribe((state) => {
        if (state === 'complete') done();
      });
      function done() {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      }
    });
  }

  #watch(): void {
    const { unSubscribe } = this.pc.connectionStateChange.subscribe((state) => {
      this.#log?.debug({ state }, 'webrtc: connection state');
      if (state === 'connected') this.#setState('connected');
      // werift reports 'closed' when the remote sends a DTLS close alert; only close() means closed here.
      else if (state === 'failed' || state === 'closed') this.#fail(`werift connection ${state}`);
    });
    this.#unsubscribes.push(unSubscribe);
    for (const transport of this.pc.iceTransports) {
      const sub = transport.connection.onData.subscribe(() => {
        this.lastInboundAt = Date.now();
      });
      this.#unsubscribes.push(sub.unSubscribe);
    }
    this.#connectTimer = setTimeout(() => {
      if (this.#state === 'connecting')
        this.#fail(`not connected after ${this.#timeouts.connectTimeoutMs} ms`);
    }, this.#timeouts.connectTimeoutMs);
    const { inactivityTimeoutMs } = this.#timeouts;
    this.#watchdog = setInterval(
      () => {
        if (this.#state !== 'connected') return;
        const silentMs = Date.now() - (this.lastInboundAt ?? 0);
        if (silentMs >= inactivityTimeoutMs) this.#fail(`nothing received for ${silentMs} ms`);
      },
      Math.max(50, Math.min(1000, inactivityTimeoutMs / 4)),
    );
  }

  #fail(reason: string): void {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#closing) return;
    this.#log?.info({ reason }, 'webrtc: peer failed');
    this.#stopTimers();
    this.#setState('failed');
  }

  #stopTimers(): void {
    clearTimeout(this.#connectTimer);
    clearInterval(this.#watchdog);
    this.#connectTimer = undefined;
    this.#watchdog = undefined;
  }

  #setState(state: PeerState): void {
    if (this.#state === state || this.#state === 'closed') return;
    if (state === 'connected') clearTimeout(this.#connectTimer);
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (err) {
        this.#log?.error({ err }, 'webrtc: state listener threw');
      }
    }
  }
}

/** The transceiver werift made for the offer's m-section at `index`. */
export function transceiverAt(pc: RTCPeerConnection, index: number): RTCRtpTransceiver {
  const transceiver = pc.getTransceivers().find((t) => t.mLineIndex === index);
  if (!transceiver) throw new Error(`no transceiver for m-section ${index}`);
  return transceiver;
}

/** The codecs both peers answer with: H.264 and Opus, plus entries for the sections we turn down. */
export function answerCodecs(rewritten: RewrittenOffer): {
  video: RTCRtpCodecParameters[];
  audio: RTCRtpCodecParameters[];
} {
  return {
    video: [
      new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000 }),
      ...declinedCodecs(rewritten, 'video'),
    ],
    audio: [
      new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 }),
      ...declinedCodecs(rewritten, 'audio'),
    ],
  };
}

/** werift codec entries for the sections we turn down, so it can answer them (as rejected). */
export function declinedCodecs(rewritten: RewrittenOffer, kind: 'audio' | 'video'): RTCRtpCodecParameters[] {
  return rewritten.declinedMimeTypes
    .filter((c) => c.mimeType.startsWith(`${kind}/`))
    .map(
      (c) =>
        new RTCRtpCodecParameters({ mimeType: c.mimeType, clockRate: c.clockRate, channels: c.channels }),
    );
}
