// Ingest SRTP decryption without werift's per-packet cipher objects (src/webrtc/werift-srtp.ts),
// against werift's own decryption of the same packets: two receiving sessions with the same keys,
// one of them ours, fed what a werift sender encrypted.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RtpHeader, SrtpAuthenticationError, SrtpSession } from 'werift';
import { parseRtpHeader } from '../../src/webrtc/werift-rtp-header.ts';
import { payloadOffsetAsWerift, useOwnSrtpDecrypt } from '../../src/webrtc/werift-srtp.ts';

const CM = 1;
const GCM = 7;

function sessions(profile: number) {
  const [k1, s1, k2, s2] = [randomBytes(16), randomBytes(14), randomBytes(16), randomBytes(14)];
  const receiving = { localMasterKey: k1, localMasterSalt: s1, remoteMasterKey: k2, remoteMasterSalt: s2 };
  const sending = { localMasterKey: k2, localMasterSalt: s2, remoteMasterKey: k1, remoteMasterSalt: s1 };
  const theirs = new SrtpSession({ keys: receiving, profile } as never);
  const mine = new SrtpSession({ keys: receiving, profile } as never);
  // Counts what still reaches werift's decryption through ours.
  const weriftDecrypt = mine.decrypt;
  let weriftCalls = 0;
  mine.decrypt = (b: Buffer) => {
    weriftCalls++;
    return weriftDecrypt(b);
  };
  return {
    sender: new SrtpSession({ keys: sending, profile } as never),
    theirs,
    mine,
    weriftCalls: () => weriftCalls,
  };
}

type Outcome = { ok: true; bytes: string } | { ok: false; error: string };
function outcome(session: SrtpSession, packet: Buffer): Outcome {
  try {
    return { ok: true, bytes: session.decrypt(Buffer.from(packet)).toString('hex') };
  } catch (err) {
    return {
      ok: false,
      error: err instanceof SrtpAuthenticationError ? 'SrtpAuthenticationError' : String(err),
    };
  }
}

/** What a publisher sends: two SSRCs across a sequence wrap, reordering, a duplicate, extensions, padding, CSRCs. */
function packets(sender: SrtpSession): Buffer[] {
  const out: Buffer[] = [];
  const mid = Buffer.from('0');
  for (let i = 0; i < 400; i++) {
    for (const [ssrc, firstSeq] of [
      [0x1111, 65_400],
      [0x2222, 100],
    ] as const) {
      const seq = (firstSeq + i) & 0xffff;
      const header = new RtpHeader({
        ssrc,
        sequenceNumber: seq,
        timestamp: i * 3000,
        payloadType: 102,
        marker: i % 3 === 0,
        extensions: i % 2 ? [{ id: 1, payload: mid }] : [],
        csrc: i % 7 === 0 ? [0xabc] : [],
        padding: i % 11 === 0,
        paddingSize: i % 11 === 0 ? 4 : 0,
      });
      // A padded packet ends with its padding, the last byte counting it (RFC 3550 5.1).
      const body = randomBytes(1 + ((i * 37) % 1300));
      const payload = i % 11 === 0 ? Buffer.concat([body, Buffer.from([0, 0, 0, 4])]) : body;
      out.push(sender.encrypt(payload, header));
    }
  }
  // Reordered pairs and a duplicate, as a path delivers them.
  for (let i = 50; i < out.length - 2; i += 60) [out[i], out[i + 2]] = [out[i + 2], out[i]];
  out.splice(300, 0, out[299]);
  return out;
}

describe("ingest SRTP decryption (AES-CM) against werift's", () => {
  it('gives the bytes werift gives, across a ROC rollover, with werift seeing only each SSRC’s first packet', () => {
    const { sender, theirs, mine, weriftCalls } = sessions(CM);
    const counts = useOwnSrtpDecrypt({ srtp: mine } as never);
    expect(counts).toEqual({ own: 0, werift: 0 });
    const sent = packets(sender);
    for (const p of sent) expect(outcome(mine, p)).toEqual(outcome(theirs, p));
    expect(weriftCalls()).toBe(2);
    expect(counts).toEqual({ own: sent.length - 2, werift: 2 });
    // Installing again changes nothing and gives the same counts.
    expect(useOwnSrtpDecrypt({ srtp: mine } as never)).toBe(counts);
  });

  it('refuses a tampered packet as werift does (its own error) and goes on in step', () => {
    const { sender, theirs, mine } = sessions(CM);
    useOwnSrtpDecrypt({ srtp: mine } as never);
    const sent = packets(sender);
    let refused = 0;
    for (const [i, p] of sent.entries()) {
      if (i > 10 && i % 25 === 0) {
        const bad = Buffer.from(p);
        bad[i % 50 === 0 ? bad.length - 1 : 20] ^= 0x40; // the tag, or the payload
        const mineOut = outcome(mine, bad);
        expect(mineOut).toEqual(outcome(theirs, bad));
        expect(mineOut).toEqual({ ok: false, error: 'SrtpAuthenticationError' });
        refused++;
      }
      expect(outcome(mine, p)).toEqual(outcome(theirs, p));
    }
    expect(refused).toBeGreaterThan(20);
  });

  it('refuses a padding count that does not fit the payload, as werift does', () => {
    const { sender, theirs, mine, weriftCalls } = sessions(CM);
    useOwnSrtpDecrypt({ srtp: mine } as never);
    const packet = (seq: number, last: number) =>
      sender.encrypt(
        Buffer.from([1, 2, 3, last]),
        new RtpHeader({ ssrc: 0x3333, sequenceNumber: seq, payloadType: 102, padding: last !== 1 }),
      );
    const sent = [packet(1, 1), packet(2, 0), packet(3, 9), packet(4, 2), packet(5, 4)];
    const got = sent.map((p) => outcome(mine, p));
    expect(got).toEqual(sent.map((p) => outcome(theirs, p)));
    expect(got.map((o) => o.ok)).toEqual([true, false, false, true, true]);
    expect(weriftCalls()).toBe(3); // the SSRC's first packet and the two refused
  });

  it('leaves AES-GCM sessions to werift', () => {
    const { mine } = sessions(GCM);
    const before = mine.decrypt;
    expect(useOwnSrtpDecrypt({ srtp: mine } as never)).toBeUndefined();
    expect(mine.decrypt).toBe(before);
    expect(useOwnSrtpDecrypt({} as never)).toBeUndefined();
  });

  it("finds the payload where werift's header parse does, or leaves the packet to werift", () => {
    let s = 3;
    const rand = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 0x100000000;
    };
    let agreed = 0;
    for (let n = 0; n < 20_000; n++) {
      const bytes = Array.from({ length: 12 + Math.floor(rand() * 60) }, () => Math.floor(rand() * 256));
      bytes[0] = 0x80 | (rand() < 0.5 ? 0x10 : 0) | (rand() < 0.2 ? Math.floor(rand() * 4) : 0);
      const cc = bytes[0] & 0x0f;
      const at = 12 + 4 * cc;
      if (bytes[0] & 0x10 && at + 4 <= bytes.length) {
        const profile = [0xbede, 0x1000, 0x1234][Math.floor(rand() * 3)] as number;
        bytes[at] = profile >> 8;
        bytes[at + 1] = profile & 0xff;
        bytes[at + 2] = 0;
        bytes[at + 3] = Math.floor(rand() * 5);
      }
      const packet = Buffer.from(bytes);
      const payloadEnd = packet.length - 10;
      const ours = payloadOffsetAsWerift(packet, payloadEnd);
      if (ours < 0) continue;
      expect(ours).toBe(parseRtpHeader(packet.subarray(0, payloadEnd)).payloadOffset);
      agreed++;
    }
    expect(agreed).toBeGreaterThan(3000);
  });
});
