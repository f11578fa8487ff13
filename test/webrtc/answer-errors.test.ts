// What leaves PeerSession.answer when werift fails: a 400 when werift refuses the offer itself, a
// generic error carrying the cause otherwise; werift's exception text is never the message.
import { describe, expect, it } from 'vitest';
import { AnswerFailedError, LOOPBACK_NETWORK, OfferRejectedError } from '../../src/webrtc/index.ts';
import { answerCodecs, PeerSession } from '../../src/webrtc/peer-session.ts';
import { planOffer, rewriteOffer } from '../../src/webrtc/sdp.ts';
import { offerFixtures } from '../helpers/sdp-mutations.ts';

const chrome = offerFixtures().get('chrome-whip-offer.sdp') as string;

function rewritten() {
  const result = planOffer(chrome, 'publish');
  if (!result.ok) throw new Error(result.reason);
  return rewriteOffer(result.plan, { video: { payloadTypes: [106], rtcpFeedback: [] } });
}

describe('PeerSession.answer failures', () => {
  it('werift refusing an offer (past our checks) is a 400 with our message, not werift’s', async () => {
    const offer = rewritten();
    // An fmtp for a payload type without rtpmap makes werift's parser throw a TypeError.
    const broken = offer.sdp.replace('a=mid:1\r\n', 'a=mid:1\r\na=fmtp:55 x=1\r\n');
    const err = await PeerSession.answer(
      { offerSdp: broken, codecs: answerCodecs(offer), prepare: () => {} },
      LOOPBACK_NETWORK,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OfferRejectedError);
    expect(err).toMatchObject({ status: 400, message: 'the offer could not be applied' });
  });

  it('a failure on our side is an AnswerFailedError: generic message, the cause kept for the log', async () => {
    const offer = rewritten();
    const boom = new TypeError("Cannot read properties of undefined (reading 'x')");
    const err = await PeerSession.answer(
      {
        offerSdp: offer.sdp,
        codecs: answerCodecs(offer),
        prepare: () => {
          throw boom;
        },
      },
      LOOPBACK_NETWORK,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnswerFailedError);
    expect((err as Error).message).toBe('could not answer the offer');
    expect((err as Error).cause).toBe(boom);
  });
});
