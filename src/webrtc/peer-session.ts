// One answering werift RTCPeerConnection with the lifecycle both peers share: complete answer,
// a four-state view of the connection, timeouts werift does not have, and RFC 9725 PATCHes
// (trickled candidates, ICE restarts) on the peer's one bundled ICE transport.
import type { Logger } from 'pino';
import {
  candidateFromSdp,
  candidateToSdp,
  RTCIceParameters,
  type RTCIceTransport,
  RTCPeerConnection,
  type RTCPeerConnectionConfig,
  RTCRtpCodecParameters,
  type RTCRtpHeaderExtensionParameters,
  type RTCRtpTransceiver,
} from 'werift';
import { sendCloseNotify } from './close-notify.ts';
import { useEgressLookup } from './dgram-lookup.ts';
import { checkIfMatch, IcePatchError, type IcePatchResult, newIceEtag } from './ice-patch.ts';
import { type IcePortsAttachment, IcePortsFullError } from './ice-ports.ts';
import { useNativeX25519 } from './native-x25519.ts';
import { type PeerNetworkOptions, usesStunServer, weriftNetworkConfig } from './network.ts';
import { finishAnswer, OfferRejectedError, type RewrittenOffer } from './sdp.ts';
import {
  type AnswerIceContext,
  answerIceContext,
  buildSdpFrag,
  type IceFragment,
  parseSdpFrag,
  SdpFragError,
} from './sdpfrag.ts';
import {
  bundleTransport,
  dropDefaultStunServer,
  newIceCredentials,
  setLocalIceCredentials,
} from './werift-ice.ts';
import { useFastRtpHeaderParse } from './werift-rtp-header.ts';

// Every peer's DTLS handshake: X25519 by OpenSSL instead of tweetnacl's JavaScript.
useNativeX25519();
// Every peer's UDP socket sends to an IP address within send(), not a tick later (dgram-lookup.ts).
useEgressLookup();
// Every received RTP header: parsed with shifts, not werift's bit strings (werift-rtp-header.ts).
useFastRtpHeaderParse();

/**
 * 'connecting' → 'connected' → 'failed' | 'closed'. An ICE restart goes 'connected' →
 * 'connecting' → 'connected' again (or 'failed' when the new ICE session does not come up in time).
 */
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
/** Remote candidates one ICE generation takes; a browser has a handful. */
export const MAX_REMOTE_CANDIDATES = 100;
/** How long a PATCH waits for werift to take a candidate (an mDNS name is looked up first). */
const ADD_CANDIDATE_TIMEOUT_MS = 2000;
/**
 * ICE restarts of one peer are at least this far apart. Each one runs werift's connectivity loop
 * (a 20 ms timer) until its ICE session is up or the peer ends, so they must not pile up.
 */
export const MIN_ICE_RESTART_INTERVAL_MS = 1000;

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
  /** Date.now() when the latest ICE restart began; undefined before the first. */
  lastIceRestartAt: number | undefined;
  readonly #log: Logger | undefined;
  readonly #timeouts: Required<PeerTimeoutOptions>;
  readonly #listeners = new Set<StateListener>();
  #state: PeerState = 'connecting';
  #connectTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  readonly #unsubscribes: (() => void)[] = [];
  /** The one ICE transport of a bundled session; undefined when the offer did not bundle. */
  #transport: RTCIceTransport | undefined;
  #ports: IcePortsAttachment | undefined;
  #etag = newIceEtag();
  #ice: AnswerIceContext | undefined;
  /** PATCHes run one at a time, in arrival order. */
  #patching: Promise<unknown> = Promise.resolve();
  #everConnected = false;
  /** Bumped by each ICE restart; a restart's state events only count for their generation. */
  #generation = 0;
  #restarting = false;

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

  /**
   * Applies the offer and returns the session with its complete answer (every candidate of ours is
   * in it; the remote may still trickle its own with patchIce).
   */
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
        await pc.setRemoteDescription({ type: 'offer', sdp: withoutEndOfCandidates(params.offerSdp) });
      } catch (err) {
        // sdp-parse.ts checked the offer first; if werift still refuses it, the offer is the cause.
        opts.logger?.warn({ err }, 'webrtc: werift refused a checked offer');
        throw new OfferRejectedError(400, 'the offer could not be applied');
      }
      session.#prepareIce(opts);
      params.prepare(pc);
      await pc.setLocalDescription(await pc.createAnswer());
      await session.#waitForGathering();
      const local = pc.localDescription;
      if (!local) throw new Error('werift produced no local description');
      session.#watch();
      const answerSdp = finishAnswer(local.sdp, /^a=group:BUNDLE/m.test(params.offerSdp));
      session.#ice = answerIceContext(answerSdp);
      return { session, answerSdp };
    } catch (err) {
      await session.close();
      // Ours, with a status of their own: a bad offer (400/406) or the shared ports full (503).
      if (err instanceof OfferRejectedError || err instanceof IcePortsFullError) throw err;
      // werift's messages are not for clients: they get a generic 500, the log gets the cause.
      opts.logger?.error({ err }, 'webrtc: could not answer an offer');
      throw new AnswerFailedError(err);
    }
  }

  get state(): PeerState {
    return this.#state;
  }

  /** The ICE session's strong entity-tag (quoted), for ETag; a new one after each ICE restart. */
  get etag(): string {
    return this.#etag;
  }

  onStateChange(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * An RFC 9725 PATCH: `ifMatch` is the request's If-Match header, `body` its
   * application/trickle-ice-sdpfrag fragment. New candidates are added (trickle); a new
   * ufrag/pwd restarts ICE, which keeps DTLS, SRTP and the media tracks: the state goes back to
   * 'connecting' until the new ICE session is up, then 'connected' again. Throws IcePatchError.
   */
  patchIce(ifMatch: string | undefined, body: string): Promise<IcePatchResult> {
    const run = this.#patching.then(() => this.#patch(ifMatch, body));
    this.#patching = run.catch(() => {});
    return run;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopTimers();
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    const transports = this.pc.iceTransports;
    // Tell the remote now; werift alone leaves it to notice by consent expiry (~30 s).
    await sendCloseNotify(this.pc);
    try {
      await this.pc.close();
    } catch (err) {
      this.#log?.warn({ err }, 'webrtc: error closing peer connection');
    }
    // pc.close() stops the transports it still knows about; make sure none survives.
    await Promise.allSettled(transports.map((t) => t.connection.close()));
    this.#ports?.release();
    // dgram's 'close' event comes before libuv releases the handle; one timer turn lets it finish.
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.#setState('closed');
    this.#listeners.clear();
  }

  /** Before the answer: our own credentials, no default STUN server, the shared ports if any. */
  #prepareIce(opts: PeerOptions): void {
    const transports = this.pc.iceTransports;
    this.#transport = bundleTransport(transports);
    if (opts.ports && !this.#transport) {
      throw new OfferRejectedError(
        400,
        'the offer must bundle its media (a=group:BUNDLE, RFC 8843): the shared ICE ports carry one ICE session per peer',
      );
    }
    for (const transport of transports) {
      if (!usesStunServer(opts)) dropDefaultStunServer(transport.connection);
      if (opts.ports && transport === this.#transport) {
        this.#ports = opts.ports.attach(transport.connection);
      } else {
        setLocalIceCredentials(transport.connection, newIceCredentials());
      }
    }
  }

  async #patch(ifMatch: string | undefined, body: string): Promise<IcePatchResult> {
    if (this.#state === 'failed' || this.#state === 'closed' || this.#closing) {
      throw new IcePatchError(404, 'SESSION_ENDED', 'the WebRTC session has ended');
    }
    checkIfMatch(ifMatch, this.#etag);
    let fragment: IceFragment;
    try {
      fragment = parseSdpFrag(body);
    } catch (err) {
      if (err instanceof SdpFragError) throw new IcePatchError(400, 'BAD_SDPFRAG', err.message);
      throw err;
    }
    const transport = this.#transport ?? this.pc.iceTransports[0];
    const current = transport?.connection;
    const newUfrag = fragment.ufrag !== undefined && fragment.ufrag !== current?.remoteUsername;
    const newPwd = fragment.pwd !== undefined && fragment.pwd !== current?.remotePassword;
    if (newUfrag && fragment.pwd === undefined) {
      throw new IcePatchError(400, 'BAD_SDPFRAG', 'an ICE restart (new a=ice-ufrag) needs a=ice-pwd too');
    }
    if (newPwd && !newUfrag) {
      throw new IcePatchError(400, 'BAD_SDPFRAG', 'a=ice-pwd changed but a=ice-ufrag did not');
    }
    if (newUfrag) return this.#restart(fragment);
    return { kind: 'trickle', added: await this.#addCandidates(fragment) };
  }

  /** Trickled (or restart) candidates go to werift's agent; ones it cannot use are dropped silently. */
  async #addCandidates(fragment: IceFragment): Promise<number> {
    const transport = this.#transport;
    if (!transport) {
      // An unbundled session: werift routes each candidate by its mid.
      let added = 0;
      for (const candidate of fragment.candidates) {
        const ok = await this.#bounded(
          this.pc
            .addIceCandidate({
              candidate: `candidate:${candidate.sdp}`,
              sdpMid: fragment.mid,
              sdpMLineIndex: 0,
            })
            .then(() => true),
        );
        if (ok) added++;
      }
      return added;
    }
    const known = transport.connection.remoteCandidates.length;
    if (known + fragment.candidates.length > MAX_REMOTE_CANDIDATES) {
      throw new IcePatchError(
        400,
        'TOO_MANY_CANDIDATES',
        `at most ${MAX_REMOTE_CANDIDATES} remote candidates per ICE session (${known} known)`,
      );
    }
    const add = async (sdp: string) => {
      const adding = transport.addRemoteCandidate(candidateFromSdp(sdp));
      if (!adding) return false; // werift ignores candidates after end-of-candidates
      await adding;
      return true;
    };
    const results = await Promise.all(fragment.candidates.map((c) => this.#bounded(add(c.sdp))));
    return results.filter(Boolean).length;
  }

  /** Waits for werift to take a candidate, at most ADD_CANDIDATE_TIMEOUT_MS; false if it failed. */
  async #bounded(work: Promise<boolean>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), ADD_CANDIDATE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.#log?.debug({ err }, 'webrtc: remote candidate not added');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * RFC 9725 §4.3.3: the remote's new credentials and candidates, our new credentials and
   * candidates back. The agent keeps its sockets, DTLS keeps its association: media resumes on
   * the new pair without renegotiation. Refused (409) before the session first connected.
   */
  async #restart(fragment: IceFragment): Promise<IcePatchResult> {
    const transport = this.#transport;
    if (!transport) {
      throw new IcePatchError(
        409,
        'ICE_RESTART_NOT_POSSIBLE',
        'ICE restart needs a bundled session (one ICE transport)',
      );
    }
    if (!this.#everConnected) {
      throw new IcePatchError(
        409,
        'ICE_RESTART_NOT_POSSIBLE',
        'ICE restart before the session first connected; retry once it is connected, or DELETE and POST again',
      );
    }
    const ice = this.#ice;
    if (!ice) throw new Error('unreachable: no answer context');
    if (fragment.candidates.length > MAX_REMOTE_CANDIDATES) {
      throw new IcePatchError(
        400,
        'TOO_MANY_CANDIDATES',
        `at most ${MAX_REMOTE_CANDIDATES} remote candidates`,
      );
    }
    const now = Date.now();
    if (this.lastIceRestartAt !== undefined && now - this.lastIceRestartAt < MIN_ICE_RESTART_INTERVAL_MS) {
      throw new IcePatchError(
        429,
        'TOO_MANY_RESTARTS',
        `ICE restarts must be at least ${MIN_ICE_RESTART_INTERVAL_MS} ms apart`,
      );
    }
    const generation = ++this.#generation;
    this.lastIceRestartAt = now;
    this.#log?.info({ generation }, 'webrtc: ICE restart');
    // restart() drops the remote credentials, so the new ones are taken without a second restart.
    transport.restart();
    transport.setRemoteParams(
      new RTCIceParameters({ usernameFragment: fragment.ufrag, password: fragment.pwd, iceLite: false }),
    );
    const creds = this.#ports ? this.#ports.renew() : newIceCredentials();
    if (!this.#ports) setLocalIceCredentials(transport.connection, creds);
    this.#etag = newIceEtag();
    // A restart while another is still connecting keeps the first one's deadline: restarting
    // again and again does not keep an unconnected peer alive.
    if (!this.#restarting) this.#armConnectTimer();
    this.#restarting = true;
    this.#setState('connecting');
    // Gathering re-announces the agent's existing sockets; nothing new is bound.
    await transport.gather();
    await this.#addCandidates(fragment);
    transport.start().catch((err: unknown) => {
      if (generation === this.#generation) this.#log?.info({ err }, 'webrtc: ICE restart did not connect');
    });
    const candidates = transport.localCandidates.map((c) => candidateToSdp(c));
    return { kind: 'restart', etag: this.#etag, fragment: buildSdpFrag(ice, { ...creds, candidates }) };
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
    // After an ICE restart DTLS stays up, so werift's connection state never leaves 'connected':
    // the ICE transport says when the new generation is through.
    const transport = this.#transport;
    if (transport) {
      const sub = transport.onStateChange.subscribe((state) => {
        if (!this.#restarting) return;
        if (state === 'connected') {
          this.#restarting = false;
          this.#log?.info({ generation: this.#generation }, 'webrtc: ICE restart connected');
          this.#setState('connected');
        }
      });
      this.#unsubscribes.push(sub.unSubscribe);
    }
    this.#armConnectTimer();
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

  #armConnectTimer(): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => {
      if (this.#state === 'connecting')
        this.#fail(`not connected after ${this.#timeouts.connectTimeoutMs} ms`);
    }, this.#timeouts.connectTimeoutMs);
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
    if (this.#state === 'failed' && state !== 'closed') return;
    if (state === 'connected') {
      clearTimeout(this.#connectTimer);
      this.#everConnected = true;
    }
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

/**
 * werift gives up on ICE as soon as it has no candidate pair left once the remote said
 * end-of-candidates, before the remote's own checks arrive. Those checks are how we find most
 * clients (peer-reflexive: behind NAT, or ICE-TCP active candidates, which never pair with our
 * passive ones), so werift never hears end-of-candidates (not in the offer, not in a PATCH) and
 * the connect timeout ends a session that does not come up.
 */
function withoutEndOfCandidates(sdp: string): string {
  return sdp.replace(/^a=end-of-candidates\r?\n/gm, '');
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
      // Only the codec planOffer chose is left in the rewritten offer; werift matches by mime type.
      new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000 }),
      new RTCRtpCodecParameters({ mimeType: 'video/VP9', clockRate: 90000 }),
      new RTCRtpCodecParameters({ mimeType: 'video/AV1', clockRate: 90000 }),
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
