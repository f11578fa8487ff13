// werift's RTCRtpReceiver, for every received RTP packet, sorts its codec table twice (the
// nackEnabled and twccEnabled getters), splits the codec's MIME type twice, clones the packet and
// calls its async RTCP loop (a promise each time, though the loop is already running). At 5
// published streams that was a fifth of the gateway's allocation, and the garbage collections it
// brings are what stalled the event loop (docs/performance.md, point 5).
//
// leanReceive() gives one ingest receiver a packet handler that does what werift's does for the
// receivers we negotiate (no TWCC, no RTX, no RED: the answer offers none), with those answers
// worked out once: the same statistics (receiver reports, getStats), the same track event. Each
// SSRC's first packet goes through werift, which makes its statistics and starts the RTCP loop
// (it runs until the receiver stops). Anything else (a packet type werift would treat specially, an SSRC werift has
// not seen yet, a stopped receiver) goes to werift's own handler. The reach into werift is checked
// (weriftReceiverInternals) and by test/webrtc/werift-receiver.test.ts.
import type { RTCRtpReceiver, RtpPacket } from 'werift';

type Handler = (packet: RtpPacket, extensions: Record<string, unknown>) => void;

/** The members of werift's RTCRtpReceiver the lean handler uses. */
interface ReceiverInternals {
  stopped: boolean;
  codecs: Record<number, { mimeType: string } | undefined>;
  remoteStreams: Record<number, { add(packet: RtpPacket): void } | undefined>;
  trackBySSRC: Record<number, { kind: string; onReceiveRtp: { execute: Handler } } | undefined>;
  receiverTWCC: unknown;
  readonly twccEnabled: unknown;
  readonly nackEnabled: unknown;
  nack: { addPacket(packet: RtpPacket): void };
  handleRtpBySsrc: Handler;
  prepareReceive(params: unknown): void;
}

/** What is missing from werift's receiver for leanReceive, or [] when nothing is. */
export function weriftReceiverInternals(receiver: RTCRtpReceiver): string[] {
  const r = receiver as unknown as Record<string, unknown>;
  const problems: string[] = [];
  for (const name of ['codecs', 'remoteStreams', 'trackBySSRC', 'nack'])
    if (typeof r[name] !== 'object' || r[name] === null)
      problems.push(`RTCRtpReceiver.${name} is not an object`);
  if (typeof r.stopped !== 'boolean') problems.push('RTCRtpReceiver.stopped is not a boolean');
  if (typeof r.prepareReceive !== 'function')
    problems.push('RTCRtpReceiver.prepareReceive is not a function');
  // An own arrow-function field that routeRtp looks up on the receiver at each packet.
  if (!Object.hasOwn(r, 'handleRtpBySsrc') || typeof r.handleRtpBySsrc !== 'function')
    problems.push('RTCRtpReceiver.handleRtpBySsrc is not an own function');
  const proto = Object.getPrototypeOf(receiver) as object;
  for (const name of ['twccEnabled', 'nackEnabled'])
    if (typeof Object.getOwnPropertyDescriptor(proto, name)?.get !== 'function')
      problems.push(`RTCRtpReceiver.${name} is not a getter`);
  return problems;
}

const SPECIAL_CODEC = /\/(rtx|red)$/i;

/**
 * Makes `receiver` handle its packets through the lean handler. Returns what werift lacks for it
 * (nothing installed then, werift's handler stays) or [] when installed.
 */
export function leanReceive(receiver: RTCRtpReceiver): string[] {
  const problems = weriftReceiverInternals(receiver);
  if (problems.length > 0) return problems;
  const r = receiver as unknown as ReceiverInternals;
  const werift = r.handleRtpBySsrc;
  // Decided at the first packet after each prepareReceive (codecs only change there).
  let decided = false;
  let ownPath = false;
  let nackOn = false;
  /** Payload types werift treats specially (RTX, RED). */
  let special = new Set<number>();
  const prepare = r.prepareReceive.bind(r);
  r.prepareReceive = (params) => {
    prepare(params);
    decided = false;
  };
  r.handleRtpBySsrc = (packet, extensions) => {
    const { ssrc, payloadType } = packet.header;
    if (!decided) {
      decided = true;
      ownPath = !r.twccEnabled && r.receiverTWCC === undefined;
      nackOn = Boolean(r.nackEnabled);
      special = new Set(
        Object.entries(r.codecs)
          .filter(([, codec]) => codec !== undefined && SPECIAL_CODEC.test(codec.mimeType))
          .map(([pt]) => Number(pt)),
      );
    }
    // An SSRC's first packet, and anything werift treats specially or drops, goes through werift.
    const stats = r.remoteStreams[ssrc];
    if (
      !ownPath ||
      r.stopped ||
      stats === undefined ||
      r.codecs[payloadType] === undefined ||
      special.has(payloadType)
    ) {
      werift(packet, extensions);
      return;
    }
    stats.add(packet);
    const track = r.trackBySSRC[ssrc];
    if (track?.kind === 'video' && nackOn) r.nack.addPacket(packet);
    // werift hands subscribers a copy; this packet was parsed for this receiver and nothing else
    // holds it, so it goes as it is.
    track?.onReceiveRtp.execute(packet, extensions);
  };
  return [];
}
