// What the page tests share, for Chromium (playwright-core) and Firefox (puppeteer-core) alike:
// Chromium's launch flags, a script run in each page before its own that records the camera
// streams and peer connections the page makes (and can play a machine with no camera or no
// microphone), polling, and a werift publisher that keeps sending H.264 until told to stop.
import { type Browser, chromium } from 'playwright-core';
import { makeH264Clip } from './media.ts';
import { h264Frames, WhipTestPublisher } from './webrtc-clients.ts';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection',
      // Host candidates as plain addresses rather than mDNS names, so the gateway can use them.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
}

/** Which device the page's machine lacks, as getUserMedia reports it: NotFoundError. */
export type MissingDevice = 'none' | 'microphone' | 'camera';

/**
 * Runs in the page before its scripts (serialized: no closure). Keeps every MediaStream that
 * getUserMedia returns and every RTCPeerConnection made, so a test can check they were released.
 */
export function instrumentMedia(missing: MissingDevice): void {
  const w = window as unknown as {
    __media: MediaStream[];
    __peers: RTCPeerConnection[];
    __asked: string[];
    RTCPeerConnection: typeof RTCPeerConnection;
  };
  w.__media = [];
  w.__peers = [];
  w.__asked = [];
  const devices = navigator.mediaDevices;
  if (devices) {
    const original = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints?: MediaStreamConstraints) => {
      w.__asked.push(constraints?.audio ? 'camera+microphone' : 'camera');
      if ((missing === 'camera' && constraints?.video) || (missing === 'microphone' && constraints?.audio)) {
        throw new DOMException('Requested device not found', 'NotFoundError');
      }
      const stream = await original(constraints);
      w.__media.push(stream);
      return stream;
    };
  }
  const Native = w.RTCPeerConnection;
  w.RTCPeerConnection = class extends Native {
    constructor(config?: RTCConfiguration) {
      super(config);
      w.__peers.push(this);
    }
  };
}

export interface MediaReport {
  /** getUserMedia calls, in order: 'camera+microphone' or 'camera'. */
  asked: string[];
  /** Every track the page got, with its state ('live' or 'ended'). */
  tracks: { kind: string; state: string }[];
  /** Every peer connection the page made, by signaling state ('closed' once closed). */
  peers: string[];
}

/** Reads what instrumentMedia recorded (page.evaluate this). */
export function mediaReport(): MediaReport {
  const w = window as unknown as { __media: MediaStream[]; __peers: RTCPeerConnection[]; __asked: string[] };
  return {
    asked: [...w.__asked],
    tracks: w.__media.flatMap((s) => s.getTracks().map((t) => ({ kind: t.kind, state: t.readyState }))),
    peers: w.__peers.map((p) => p.signalingState),
  };
}

/** Polls `probe` until it returns something truthy; fails naming `what` and the last value seen. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
  describe?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) {
      const seen = describe ? `; last seen: ${await describe()}` : '';
      throw new Error(`timed out waiting for ${what}${seen}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A werift WHIP publisher sending a looped H.264 test clip until `stop()`. */
export async function startH264Publisher(whipUrl: string) {
  const clip = await makeH264Clip({ seconds: 2 });
  // Generous: browsers and ffmpeg share two cores with other tests.
  const publisher = await WhipTestPublisher.connect(whipUrl, { audio: false, connectTimeoutMs: 15_000 });
  const abort = new AbortController();
  const sending = (async () => {
    let timestamp = 0;
    while (!abort.signal.aborted) {
      const frames = h264Frames(clip, 30, 1200, timestamp);
      await publisher.send({ video: frames, signal: abort.signal });
      timestamp = (frames[frames.length - 1].timestamp + 3000) >>> 0;
    }
  })();
  return {
    publisher,
    async stop() {
      abort.abort();
      await sending.catch(() => {});
      await publisher.close();
    },
  };
}
