// Seeded fuzzing of the offer path: thousands of mutations of real offers. Whatever the damage, the
// check answers (never throws), refusals are 400/406 with a one-line reason, and an accepted offer
// is rewritten into SDP that both our parser and werift's take; a sample goes through real peers.
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { SessionDescription } from 'werift';
import { EgressPeer, IngestPeer, LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import {
  type OfferPurpose,
  parseSdp,
  pickH264ForSending,
  planOffer,
  rewriteOffer,
} from '../../src/webrtc/sdp.ts';
import { INVALID_MUTATIONS, mutate, offerFixtures, prng } from '../helpers/sdp-mutations.ts';

const fixtures = [...offerFixtures().values()];
const MUTATIONS = 4000;

/** What IngestPeer/EgressPeer ask of rewriteOffer for a plan. */
function rewriteFor(
  plan: Extract<ReturnType<typeof planOffer>, { ok: true }>['plan'],
  purpose: OfferPurpose,
) {
  const video = purpose === 'publish' ? plan.video.codecs : [pickH264ForSending(plan.video.codecs)];
  return rewriteOffer(plan, {
    video: { payloadTypes: video.map((c) => c.payloadType), rtcpFeedback: ['nack', 'nack pli', 'ccm fir'] },
    audio: plan.audio && { payloadTypes: [plan.audio.codecs[0].payloadType], rtcpFeedback: [] },
  });
}

/** The parser's time for one offer (planOffer remembers its last answer, so time parseSdp). */
function bestOf3(sdp: string): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    parseSdp(sdp);
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

describe('offer fuzzing (seeded)', () => {
  it(`${MUTATIONS} random mutations: refused cleanly or rewritten into SDP werift parses`, () => {
    const random = prng(0x5eed);
    const accepted: { sdp: string; purpose: OfferPurpose }[] = [];
    const refusals = new Map<number, number>();
    let slowest = 0;
    for (let i = 0; i < MUTATIONS; i++) {
      let sdp = fixtures[Math.floor(random() * fixtures.length)];
      for (let k = 1 + Math.floor(random() * 3); k > 0; k--) sdp = mutate(sdp, random);
      for (const purpose of ['publish', 'view'] as const) {
        const result = planOffer(sdp, purpose);
        if (!result.ok) {
          refusals.set(result.status, (refusals.get(result.status) ?? 0) + 1);
          expect([400, 406]).toContain(result.status);
          expect(result.reason).not.toMatch(/\n|undefined|TypeError|Cannot read/);
          continue;
        }
        const rewritten = rewriteFor(result.plan, purpose);
        expect(() => parseSdp(rewritten.sdp), sdp).not.toThrow();
        expect(() => SessionDescription.parse(rewritten.sdp), rewritten.sdp).not.toThrow();
        accepted.push({ sdp, purpose });
      }
    }
    // The mutations must exercise both outcomes to mean anything.
    expect(accepted.length).toBeGreaterThan(MUTATIONS / 10);
    expect(refusals.get(400) ?? 0).toBeGreaterThan(MUTATIONS / 4);
    // Linear and small: every offer here is checked in well under a millisecond (the limits' worst
    // cases are in sdp-limits.test.ts). A GC pause can land on any call, so take the best of three.
    for (const { sdp } of accepted.slice(0, 200)) slowest = Math.max(slowest, bestOf3(sdp));
    expect(slowest).toBeLessThan(5);
    sampleAccepted.push(...accepted.filter((_, i) => i % Math.ceil(accepted.length / 60) === 0));
  });

  it('invalid categories: zero of them accepted, on any fixture, for publish or view', () => {
    let accepted = 0;
    for (const mutation of INVALID_MUTATIONS) {
      for (const fixture of fixtures) {
        for (const purpose of ['publish', 'view'] as const) {
          if (planOffer(mutation.apply(fixture), purpose).ok) accepted++;
        }
      }
    }
    expect(accepted).toBe(0);
  });

  it('accepted mutations get a real answer from werift (a sample, through IngestPeer/EgressPeer)', async () => {
    expect(sampleAccepted.length).toBeGreaterThan(20);
    for (const { sdp, purpose } of sampleAccepted) {
      const opts = { ...LOOPBACK_NETWORK, gatherTimeoutMs: 1000 };
      const peer =
        purpose === 'publish' ? await IngestPeer.create(sdp, opts) : await EgressPeer.create(sdp, opts);
      expect(() => parseSdp(peer.answerSdp)).not.toThrow();
      await peer.close();
    }
  }, 60_000);
});

const sampleAccepted: { sdp: string; purpose: OfferPurpose }[] = [];
