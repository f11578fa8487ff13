import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkOffer,
  EgressPeer,
  IngestPeer,
  LOOPBACK_NETWORK,
  OfferRejectedError,
} from '../../src/webrtc/index.ts';
import { finishAnswer, h264Profile, parseSdp, planOffer, rewriteOffer } from '../../src/webrtc/sdp.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const chromeWhip = fixture('chrome-whip-offer.sdp');
const chromeWhep = fixture('chrome-whep-offer.sdp');
const firefoxWhip = fixture('firefox-whip-offer.sdp');
const obsWhip = fixture('obs-whip-offer.sdp');
const vp8Only = fixture('chrome-vp8-only-offer.sdp');
/** The same offer with AV1 only (publishers' AV1 is transcoded; viewers get no AV1). */
const av1Only = vp8Only.replaceAll(/ VP[89]\/90000/g, ' AV1/90000');
/** The same offer with no video codec the gateway can take. */
const h265Only = vp8Only.replaceAll(/ VP[89]\/90000/g, ' H265/90000');
const h264Mode0 = fixture('chrome-h264-mode0-offer.sdp');
const pcmuAudio = fixture('pcmu-audio-whip-offer.sdp');

/** The codecs of the m-section of `kind` in an SDP, as `name fmtp` strings. */
function answeredCodecs(sdp: string, kind: string) {
  const section = parseSdp(sdp).media.find((m) => m.kind === kind);
  if (!section) return undefined;
  return {
    port: section.port,
    direction: section.direction,
    codecs: section.codecs.map((c) => ({
      pt: c.payloadType,
      name: c.name,
      fmtp: c.fmtp,
      fb: c.rtcpFeedback,
    })),
  };
}

describe('checkOffer', () => {
  it.each([
    ['empty', ''],
    ['not SDP', 'hello'],
    ['no v=0 first', 'o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n'],
  ])('rejects %s with 400', (_, sdp) => {
    const result = checkOffer(sdp, 'publish');
    expect(result).toMatchObject({ ok: false, status: 400 });
    expect(result.ok === false && result.reason).toMatch(/v=0/);
  });

  it('rejects an SDP without m= lines with 400', () => {
    expect(checkOffer('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n', 'publish')).toEqual({
      ok: false,
      status: 400,
      reason: 'SDP has no m= line',
    });
  });

  it('rejects an offer without ICE credentials or fingerprint with 400', () => {
    const noIce = chromeWhip
      .split('\r\n')
      .filter((l) => !l.startsWith('a=ice-ufrag'))
      .join('\r\n');
    expect(checkOffer(noIce, 'publish')).toMatchObject({
      ok: false,
      status: 400,
      reason: expect.stringMatching(/ICE/),
    });
    const noFingerprint = obsWhip
      .split('\r\n')
      .filter((l) => !l.startsWith('a=fingerprint'))
      .join('\r\n');
    expect(checkOffer(noFingerprint, 'publish')).toMatchObject({
      ok: false,
      status: 400,
      reason: expect.stringMatching(/fingerprint/),
    });
  });

  it('rejects a malformed m= line with 400', () => {
    const broken = obsWhip.replace('m=video 9 UDP/TLS/RTP/SAVPF 96', 'm=video nine');
    expect(checkOffer(broken, 'publish')).toMatchObject({ ok: false, status: 400 });
  });

  it('accepts a VP8/VP9-only offer with VP8 (its payload type, for a transcode), for publishing and viewing', () => {
    expect(checkOffer(vp8Only, 'publish')).toMatchObject({
      ok: true,
      video: { codec: 'vp8', payloadTypes: [96] },
    });
    const view = vp8Only.replaceAll('a=sendonly', 'a=recvonly');
    expect(checkOffer(view, 'view')).toMatchObject({ ok: true, video: { codec: 'vp8', payloadTypes: [96] } });
  });

  it('takes VP9 from a publisher that offers no VP8, but gives a viewer only H.264 or VP8', () => {
    const vp9Only = vp8Only.replace('a=rtpmap:96 VP8/90000', 'a=rtpmap:96 AV1/90000');
    expect(checkOffer(vp9Only, 'publish')).toMatchObject({
      ok: true,
      video: { codec: 'vp9', payloadTypes: [98] },
    });
    expect(checkOffer(vp9Only.replaceAll('a=sendonly', 'a=recvonly'), 'view')).toEqual({
      ok: false,
      status: 406,
      reason: 'no acceptable video codec: offered AV1, VP9; accepted H264 (packetization-mode=1), VP8',
    });
  });

  it('prefers H.264 over VP8 wherever it is offered (no transcode)', () => {
    expect(checkOffer(chromeWhip, 'publish')).toMatchObject({ ok: true, video: { codec: 'h264' } });
  });

  it('rejects an offer with no codec it can take with 406 naming what was offered and what is accepted', () => {
    const result = checkOffer(h265Only, 'publish');
    expect(result).toEqual({
      ok: false,
      status: 406,
      reason: 'no acceptable video codec: offered H265; accepted H264 (packetization-mode=1), VP8, VP9, AV1',
    });
  });

  it('takes AV1 (profile 0) from a publisher that offers nothing else, with its payload type; never for a viewer', () => {
    expect(checkOffer(av1Only, 'publish')).toMatchObject({
      ok: true,
      video: { codec: 'av1', payloadTypes: [96] },
    });
    // AV1 comes after VP9 and VP8.
    const av1AndVp9 = vp8Only.replace(' VP8/90000', ' AV1/90000');
    expect(checkOffer(av1AndVp9, 'publish')).toMatchObject({ ok: true, video: { codec: 'vp9' } });
    const profile1 = av1Only.replace('a=rtpmap:96 AV1/90000', 'a=rtpmap:96 AV1/90000\r\na=fmtp:96 profile=1');
    expect(profile1).toContain('profile=1');
    expect(checkOffer(profile1, 'publish')).toMatchObject({
      ok: true,
      video: { codec: 'av1', payloadTypes: [98] },
    });
    const profile1Only = profile1.replace('a=rtpmap:98 AV1/90000', 'a=rtpmap:98 H265/90000');
    const none = profile1Only.replace('a=rtpmap:100 AV1/90000', 'a=rtpmap:100 H265/90000');
    expect(checkOffer(none, 'publish')).toMatchObject({ ok: false, status: 406 });
    expect(checkOffer(av1Only.replaceAll('a=sendonly', 'a=recvonly'), 'view')).toEqual({
      ok: false,
      status: 406,
      reason: 'no acceptable video codec: offered AV1; accepted H264 (packetization-mode=1), VP8',
    });
  });

  it('takes VP8 over H.264 packetization-mode=0; with mode 0 alone answers 406', () => {
    expect(checkOffer(h264Mode0, 'publish')).toMatchObject({ ok: true, video: { codec: 'vp8' } });
    const result = checkOffer(h264Mode0.replaceAll(/ VP[89]\/90000/g, ' H265/90000'), 'publish');
    expect(result).toMatchObject({ ok: false, status: 406 });
    expect(result.ok === false && result.reason).toContain('H264 (packetization-mode=0)');
  });

  it('rejects a publish offer whose video is recvonly (a WHEP offer) with 400', () => {
    expect(checkOffer(chromeWhep, 'publish')).toMatchObject({
      ok: false,
      status: 400,
      reason: expect.stringMatching(/recvonly/),
    });
  });

  it('accepts Chrome: every packetization-mode=1 H.264 profile, and Opus', () => {
    const result = checkOffer(chromeWhip, 'publish');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.video?.payloadTypes).toEqual([102, 106, 127, 112]);
    expect(result.video?.codecs[1]).toBe(
      'H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    );
    expect(result.audio?.codecs).toEqual(['opus/48000/2 minptime=10;useinbandfec=1']);
  });

  it('accepts Firefox (fmtp before rtpmap, session fingerprint)', () => {
    const result = checkOffer(firefoxWhip, 'publish');
    expect(result).toMatchObject({
      ok: true,
      video: { payloadTypes: [126], mid: '1' },
      audio: { payloadTypes: [109] },
    });
  });

  it('accepts OBS (libdatachannel: session-level ICE and fingerprint, high profile)', () => {
    const result = checkOffer(obsWhip, 'publish');
    expect(result).toMatchObject({ ok: true, video: { payloadTypes: [96] }, audio: { payloadTypes: [111] } });
    expect(result.ok && result.video?.codecs[0]).toContain('profile-level-id=64001f');
  });

  it('accepts a publisher without usable audio (audio is optional)', () => {
    const result = checkOffer(pcmuAudio, 'publish');
    expect(result).toMatchObject({ ok: true, video: { payloadTypes: [96] } });
    expect(result.ok && result.audio).toBeUndefined();
  });

  it('accepts a Chrome WHEP offer for viewing but not a sendonly one', () => {
    expect(checkOffer(chromeWhep, 'view')).toMatchObject({
      ok: true,
      video: { payloadTypes: [102, 106, 127, 112] },
    });
    expect(checkOffer(chromeWhip, 'view')).toMatchObject({ ok: false, status: 400 });
    expect(checkOffer(av1Only.replaceAll('a=sendonly', 'a=recvonly'), 'view')).toMatchObject({
      ok: false,
      status: 406,
    });
  });
});

describe('planOffer', () => {
  it('parses an offer once when it is checked and then planned (the last plan is remembered)', () => {
    const first = planOffer(chromeWhip, 'publish');
    expect(planOffer(chromeWhip, 'publish')).toBe(first);
    expect(planOffer(chromeWhip, 'view')).not.toBe(first);
    expect(planOffer(`${chromeWhip}`, 'publish')).toEqual(first);
  });
});

describe('rewriteOffer', () => {
  it('keeps only the chosen payload types and feedback, and declines other sections', () => {
    const result = planOffer(pcmuAudio, 'publish');
    if (!result.ok) throw new Error(result.reason);
    const rewritten = rewriteOffer(result.plan, { video: { payloadTypes: [96], rtcpFeedback: ['nack'] } });
    const parsed = parseSdp(rewritten.sdp);
    expect(parsed.media[0]).toMatchObject({ kind: 'audio', direction: 'inactive', formats: ['0'] });
    expect(parsed.media[1].codecs[0].rtcpFeedback).toEqual(['nack']);
    expect(rewritten.declinedMimeTypes).toEqual([
      { mimeType: 'audio/PCMU', clockRate: 8000, channels: undefined },
    ]);
  });

  it('drops rtx payload types and the rtx SSRC, whatever order the a=ssrc lines come in', () => {
    // Put the rtx SSRC's line first: werift would otherwise take it for the media SSRC.
    const lines = firefoxWhip.split('\r\n');
    const [rtx] = lines.splice(
      lines.findIndex((l) => l.startsWith('a=ssrc:3436468089')),
      1,
    );
    lines.splice(
      lines.findIndex((l) => l.startsWith('a=ssrc:1649052140')),
      0,
      rtx,
    );
    const result = planOffer(lines.join('\r\n'), 'publish');
    if (!result.ok) throw new Error(result.reason);
    const rewritten = rewriteOffer(result.plan, {
      video: { payloadTypes: [126], rtcpFeedback: ['nack', 'nack pli'] },
    });
    const video = parseSdp(rewritten.sdp).media[1];
    expect(video.formats).toEqual(['126']);
    expect(video.lines.filter((l) => l.startsWith('a=ssrc'))).toEqual([
      'a=ssrc:1649052140 cname:{2a4c6e8f-1b3d-4f5a-8c7e-9d0b1a2c3e4f}',
    ]);
    expect(video.codecs[0].rtcpFeedback).toEqual(['nack', 'nack pli']);
  });
});

describe('answers from realistic offers', () => {
  const opts = { ...LOOPBACK_NETWORK, connectTimeoutMs: 60_000 };

  it.each([
    ['Chrome', chromeWhip, [102, 106, 127, 112]],
    ['Firefox', firefoxWhip, [126]],
    ['OBS (high profile)', obsWhip, [96]],
  ])('IngestPeer answers %s with recvonly H.264 packetization-mode=1 and Opus', async (_, offer, pts) => {
    const peer = await IngestPeer.create(offer, opts);
    try {
      const video = answeredCodecs(peer.answerSdp, 'video');
      expect(video?.direction).toBe('recvonly');
      expect(video?.codecs.map((c) => c.pt)).toEqual(pts);
      for (const codec of video?.codecs ?? []) {
        expect(codec.name.toLowerCase()).toBe('h264');
        expect(codec.fmtp['packetization-mode']).toBe('1');
        expect(codec.fb).toEqual(['nack', 'nack pli']);
      }
      const audio = answeredCodecs(peer.answerSdp, 'audio');
      expect(audio?.direction).toBe('recvonly');
      expect(audio?.codecs.map((c) => c.name.toLowerCase())).toEqual(['opus']);
      expect(peer.answerSdp).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host/);
      expect(peer.answerSdp).toContain('a=end-of-candidates');
      expect(peer.answerSdp).not.toMatch(/typ (srflx|relay)/);
    } finally {
      await peer.close();
    }
  });

  it('IngestPeer rejects the G.711 audio section with port 0 and drops it from BUNDLE', async () => {
    const peer = await IngestPeer.create(pcmuAudio, opts);
    try {
      const audio = answeredCodecs(peer.answerSdp, 'audio');
      expect(audio?.port).toBe(0);
      expect(peer.answerSdp).toMatch(/a=group:BUNDLE 1\r\n/);
      expect(peer.audioCodec).toBeUndefined();
      expect(answeredCodecs(peer.answerSdp, 'video')?.direction).toBe('recvonly');
    } finally {
      await peer.close();
    }
  });

  it('IngestPeer.create throws OfferRejectedError with the status', async () => {
    await expect(IngestPeer.create(h265Only, opts)).rejects.toMatchObject({
      name: 'OfferRejectedError',
      status: 406,
    });
    await expect(IngestPeer.create('nope', opts)).rejects.toBeInstanceOf(OfferRejectedError);
  });

  it('EgressPeer answers Chrome WHEP with one sendonly H.264 (constrained baseline by default)', async () => {
    const peer = await EgressPeer.create(chromeWhep, opts);
    try {
      const video = answeredCodecs(peer.answerSdp, 'video');
      expect(video?.direction).toBe('sendonly');
      expect(video?.codecs).toHaveLength(1);
      expect(video?.codecs[0]).toMatchObject({ pt: 106, fb: ['ccm fir', 'nack', 'nack pli'] });
      expect(peer.videoCodec.payloadType).toBe(106);
      expect(peer.audioCodec?.payloadType).toBe(111);
      expect(answeredCodecs(peer.answerSdp, 'audio')?.direction).toBe('sendonly');
      // One stream id for both tracks so players get a single MediaStream.
      const msids = [...peer.answerSdp.matchAll(/^a=msid:(\S+) \S+$/gm)].map((m) => m[1]);
      expect(msids).toHaveLength(2);
      expect(new Set(msids).size).toBe(1);
      expect(peer.answerSdp).toContain(`a=ssrc:${peer.videoSsrc} `);
    } finally {
      await peer.close();
    }
  });

  it('h264Profile classifies profile-level-ids', () => {
    expect(['42e01f', '42001f', '4d001f', '640c1f', '64001f', 'f4001f'].map(h264Profile)).toEqual([
      'constrained-baseline',
      'baseline',
      'main',
      'high',
      'high',
      'idc-f4',
    ]);
  });

  it('EgressPeer prefers the H.264 profile of the stream it will send', async () => {
    const peer = await EgressPeer.create(chromeWhep, { ...opts, h264ProfileLevelId: '640c1f' });
    try {
      expect(peer.videoCodec.payloadType).toBe(112);
      expect(peer.videoCodec.fmtp).toContain('profile-level-id=64001f');
    } finally {
      await peer.close();
    }
  });
});

describe('BUNDLE (RFC 8843): the BUNDLE-tag section’s transport applies to the whole group', () => {
  // aiortc gives each bundled m-section its own ICE credentials, port and candidates.
  const aiortcWhip = fixture('aiortc-whip-offer.sdp');
  const aiortcWhep = fixture('aiortc-whep-offer.sdp');
  const values = (sdp: string, attribute: string) =>
    parseSdp(sdp)
      .media.filter((m) => m.port !== 0)
      .map((m) => m.lines.filter((l) => l.startsWith(`a=${attribute}`)));

  it('the fixture really has per-section credentials and candidates', () => {
    const media = parseSdp(aiortcWhip).media;
    expect(media.map((m) => m.ice.ufrag)).toEqual(['rWfE', 'gLWo']);
    expect(media[0].ice.candidates[0]).not.toEqual(media[1].ice.candidates[0]);
  });

  it('rewrites every section to the tag’s ICE/DTLS parameters and keeps only the tag’s candidates', () => {
    const result = planOffer(aiortcWhip, 'publish');
    if (!result.ok) throw new Error(result.reason);
    expect(result.plan.bundleTag?.mid).toBe('0');
    const rewritten = rewriteOffer(result.plan, {
      video: { payloadTypes: [99, 101], rtcpFeedback: ['nack', 'nack pli'] },
      audio: { payloadTypes: [96], rtcpFeedback: [] },
    });
    expect(values(rewritten.sdp, 'ice-ufrag')).toEqual([['a=ice-ufrag:rWfE'], ['a=ice-ufrag:rWfE']]);
    expect(values(rewritten.sdp, 'ice-pwd')).toEqual([
      ['a=ice-pwd:JeS1ANKYkVt9xwalWlIOcl'],
      ['a=ice-pwd:JeS1ANKYkVt9xwalWlIOcl'],
    ]);
    const [audioCandidates, videoCandidates] = values(rewritten.sdp, 'candidate');
    expect(audioCandidates).toEqual([`a=candidate:${parseSdp(aiortcWhip).media[0].ice.candidates[0]}`]);
    expect(videoCandidates).toEqual([]);
    expect(rewritten.sdp).toMatch(/^a=group:BUNDLE 0 1\r$/m);
  });

  it('the tag is the first mid the answer accepts: a declined first section does not lend its transport', () => {
    // Audio offered as PCMU only is declined, so video (mid 1) becomes the tag.
    const pcmuFirst = aiortcWhip.replace(
      'm=audio 60413 UDP/TLS/RTP/SAVPF 96 0 8',
      'm=audio 60413 UDP/TLS/RTP/SAVPF 0 8',
    );
    const result = planOffer(pcmuFirst.replace('a=rtpmap:96 opus/48000/2\r\n', ''), 'publish');
    if (!result.ok) throw new Error(result.reason);
    expect(result.plan.audio).toBeUndefined();
    expect(result.plan.bundleTag?.mid).toBe('1');
    const rewritten = rewriteOffer(result.plan, {
      video: { payloadTypes: [99], rtcpFeedback: [] },
    });
    const parsed = parseSdp(rewritten.sdp);
    expect(parsed.media.map((m) => m.ice.ufrag)).toEqual(['gLWo', 'gLWo']);
    expect(parsed.media.map((m) => m.ice.candidates.length)).toEqual([0, 1]);
    expect(parsed.media[0].direction).toBe('inactive');
  });

  it('a section outside the BUNDLE group is declined and does not lend its transport either', () => {
    const outside = aiortcWhip.replace('a=group:BUNDLE 0 1', 'a=group:BUNDLE 1');
    const result = planOffer(outside, 'publish');
    if (!result.ok) throw new Error(result.reason);
    expect(result.plan.audio).toBeUndefined();
    expect(result.plan.bundleTag?.mid).toBe('1');
  });

  it('a bundle-only section (port 0 in the group, Firefox max-bundle) is used, with the tag’s transport', async () => {
    const bundleOnly = firefoxWhip
      .replace('m=video 9 UDP/TLS/RTP/SAVPF', 'm=video 0 UDP/TLS/RTP/SAVPF')
      .replace('a=mid:1\r\n', 'a=mid:1\r\na=bundle-only\r\n');
    const result = planOffer(bundleOnly, 'publish');
    if (!result.ok) throw new Error(result.reason);
    expect(result.plan.video.section.mid).toBe('1');
    const peer = await IngestPeer.create(bundleOnly, LOOPBACK_NETWORK);
    try {
      expect(answeredCodecs(peer.answerSdp, 'video')).toMatchObject({ direction: 'recvonly' });
      expect(answeredCodecs(peer.answerSdp, 'video')?.port).not.toBe(0);
    } finally {
      await peer.close();
    }
  });

  it('without the tag’s credentials: 400 naming the line', () => {
    const noCredentials = aiortcWhip.replace('a=ice-ufrag:rWfE\r\n', '');
    expect(checkOffer(noCredentials, 'publish')).toEqual({
      ok: false,
      status: 400,
      reason: 'the m= section on line 7 (the BUNDLE tag) has no ICE credentials (a=ice-ufrag and a=ice-pwd)',
    });
    // The same missing line in a non-tag section is of no consequence.
    expect(checkOffer(aiortcWhip.replace('a=ice-ufrag:gLWo\r\n', ''), 'publish').ok).toBe(true);
  });

  it.each([
    ['IngestPeer', aiortcWhip, (o: string) => IngestPeer.create(o, LOOPBACK_NETWORK)],
    ['EgressPeer', aiortcWhep, (o: string) => EgressPeer.create(o, LOOPBACK_NETWORK)],
  ])('%s answers an aiortc offer with one ICE/DTLS transport for the bundle', async (_, offer, create) => {
    const peer = await create(offer);
    try {
      const media = parseSdp(peer.answerSdp).media;
      expect(media.map((m) => m.port !== 0)).toEqual([true, true]);
      expect(new Set(media.map((m) => m.ice.ufrag)).size).toBe(1);
      expect(new Set(media.map((m) => m.ice.fingerprints.join())).size).toBe(1);
      expect(peer.answerSdp).toMatch(/^a=group:BUNDLE 0 1\r$/m);
    } finally {
      await peer.close();
    }
  });

  it('finishAnswer refuses an answer whose bundled sections disagree on ICE credentials', () => {
    const answer = aiortcWhip.replaceAll('a=sendonly', 'a=recvonly');
    expect(() => finishAnswer(answer)).toThrow(/BUNDLE/);
    const consistent = answer
      .replace('a=ice-ufrag:gLWo', 'a=ice-ufrag:rWfE')
      .replace('a=ice-pwd:Zwohbm0ABajYnuDNjbjSIO', 'a=ice-pwd:JeS1ANKYkVt9xwalWlIOcl');
    expect(finishAnswer(consistent)).toBe(consistent);
  });
});

describe('finishAnswer without BUNDLE in the offer', () => {
  it('drops the BUNDLE group werift writes anyway (an answer may not add one) and keeps each section', () => {
    const answer =
      'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n';
    const finished = finishAnswer(answer, false);
    expect(finished).not.toContain('a=group');
    expect(finished).toContain('m=audio');
    expect(finished).toContain('m=video');
  });
});
