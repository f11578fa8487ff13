// The lean RTP handler on werift's receiver (src/webrtc/werift-receiver.ts) against werift's own:
// two receivers fed the same packets must hand the track the same packets and keep the same
// statistics, and the lean one must still send receiver reports.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  MediaStreamTrack,
  RTCRtpCodecParameters,
  RTCRtpReceiver,
  type RtcpPacket,
  RtcpRrPacket,
  RtpHeader,
  RtpPacket,
} from 'werift';
import { leanReceive, weriftReceiverInternals } from '../../src/webrtc/werift-receiver.ts';

const VIDEO_SSRC = 0x1111;
const receivers: RTCRtpReceiver[] = [];

afterEach(() => {
  for (const r of receivers.splice(0)) r.stop();
  vi.useRealTimers();
});

type Sent = RtcpPacket[];

function receiver(feedback: { type: string; parameter?: string }[], sent: Sent[] = []) {
  const r = new RTCRtpReceiver({ debug: {} } as never, 'video', 0xabcd);
  receivers.push(r);
  r.setDtlsTransport({ sendRtcp: async (packets: RtcpPacket[]) => void sent.push(packets) } as never);
  r.prepareReceive({
    codecs: [
      new RTCRtpCodecParameters({
        mimeType: 'video/H264',
        clockRate: 90000,
        payloadType: 102,
        rtcpFeedback: feedback,
      }),
      new RTCRtpCodecParameters({
        mimeType: 'video/rtx',
        clockRate: 90000,
        payloadType: 103,
        parameters: 'apt=102',
      }),
    ],
    encodings: [],
    headerExtensions: [],
  } as never);
  r.addTrack(new MediaStreamTrack({ kind: 'video', ssrc: VIDEO_SSRC, remote: true }));
  const got: string[] = [];
  r.track.onReceiveRtp.subscribe((p: RtpPacket) => {
    const h = p.header;
    got.push(
      `${h.ssrc}/${h.payloadType}/${h.sequenceNumber}/${h.timestamp}/${h.marker}/${p.payload.toString('hex')}`,
    );
  });
  return { r, got };
}

/** Packets as a publisher on a lossy path sends them: gaps, duplicates, reordering, a wrap. */
function packets(count: number): RtpPacket[] {
  let s = 11;
  const rand = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 0x100000000;
  };
  const out: RtpPacket[] = [];
  let seq = 65_000;
  for (let i = 0; i < count; i++) {
    const r = rand();
    const ssrc = r < 0.03 ? 0x2222 : VIDEO_SSRC; // an SSRC with no track
    const payloadType = r > 0.97 ? 100 : r > 0.94 ? 103 : 102; // unknown, RTX, H.264
    seq = (seq + (r < 0.1 ? 3 : r < 0.15 ? -2 : r < 0.18 ? 0 : 1)) & 0xffff;
    const header = new RtpHeader({
      ssrc,
      payloadType,
      sequenceNumber: seq,
      timestamp: (i * 3000) >>> 0,
      marker: i % 5 === 4,
    });
    out.push(new RtpPacket(header, Buffer.from([i & 0xff, (i >> 8) & 0xff, 1, 2, 3])));
  }
  return out;
}

/** Each packet as werift's DTLS transport makes it: parsed from the bytes, once per receiver. */
const fresh = (p: RtpPacket) => RtpPacket.deSerialize(p.serialize());

function statistics(r: RTCRtpReceiver) {
  const streams = (r as unknown as { remoteStreams: Record<number, Record<string, unknown>> }).remoteStreams;
  return Object.fromEntries(
    Object.entries(streams).map(([ssrc, st]) => {
      const { lastPacketReceivedTimestamp: _, ...fields } = st;
      return [ssrc, { ...fields, lost: st.packets_lost, fraction: st.fraction_lost, jitter: st.jitter }];
    }),
  );
}

describe('the lean RTP handler on werift receivers', () => {
  it('hands the track what werift hands it and keeps the same statistics', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const theirs = receiver([{ type: 'nack' }, { type: 'nack', parameter: 'pli' }]);
    const mine = receiver([{ type: 'nack' }, { type: 'nack', parameter: 'pli' }]);
    expect(leanReceive(mine.r)).toEqual([]);
    const handlers = [theirs, mine].map(({ r }) => r.handleRtpBySsrc);
    expect(handlers[1]).not.toBe(handlers[0]);
    for (const p of packets(3000)) {
      vi.advanceTimersByTime(7);
      for (const h of handlers) h(fresh(p), {});
    }
    expect(mine.got.length).toBeGreaterThan(2500);
    expect(mine.got).toEqual(theirs.got);
    expect(statistics(mine.r)).toEqual(statistics(theirs.r));
    // werift's NACK bookkeeping (on when the codec has nack feedback) saw the same gaps.
    const lost = (r: RTCRtpReceiver) =>
      (r as unknown as { nack: { lostSeqNumbers: number[] } }).nack.lostSeqNumbers;
    expect(lost(mine.r).length).toBeGreaterThan(0);
    expect(lost(mine.r)).toEqual(lost(theirs.r));
  });

  it('still sends receiver reports, with the highest sequence and the losses it saw', async () => {
    const sent: Sent[] = [];
    const { r } = receiver([], sent);
    leanReceive(r);
    let seq = 100;
    for (let i = 0; i < 50; i++) {
      seq += i === 20 ? 4 : 1; // three lost
      r.handleRtpBySsrc(
        fresh(
          new RtpPacket(
            new RtpHeader({ ssrc: VIDEO_SSRC, payloadType: 102, sequenceNumber: seq }),
            Buffer.from([i]),
          ),
        ),
        {},
      );
    }
    const deadline = Date.now() + 4000;
    while (!sent.flat().some((p) => p instanceof RtcpRrPacket) && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 50));
    const rr = sent.flat().find((p): p is RtcpRrPacket => p instanceof RtcpRrPacket);
    expect(rr?.reports[0]).toMatchObject({ ssrc: VIDEO_SSRC, highestSequence: seq, packetsLost: 3 });
  });

  it('leaves TWCC receivers to werift (it sets up TWCC feedback there)', () => {
    const { r, got } = receiver([{ type: 'transport-cc' }]);
    leanReceive(r);
    for (const p of packets(20).filter((p) => p.header.ssrc === VIDEO_SSRC && p.header.payloadType === 102))
      r.handleRtpBySsrc(fresh(p), {});
    expect((r as unknown as { receiverTWCC: unknown }).receiverTWCC).toBeDefined();
    expect(got.length).toBeGreaterThan(10);
  });

  it("names what moved and keeps werift's handler when werift's receiver is not as expected", () => {
    const { r } = receiver([]);
    const before = r.handleRtpBySsrc;
    Object.defineProperty(r, 'stopped', { value: 'no' });
    expect(weriftReceiverInternals(r)).toEqual(['RTCRtpReceiver.stopped is not a boolean']);
    expect(leanReceive(r)).toEqual(['RTCRtpReceiver.stopped is not a boolean']);
    expect(r.handleRtpBySsrc).toBe(before);
  });
});
