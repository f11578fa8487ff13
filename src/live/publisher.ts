// What feeds a live stream. A WHIP publisher is a WebRTC peer the session owns (IngestPeer: RTP
// in, keyframe requests out). Any other publisher (RTMP) is a feed: it pushes timed access units
// and audio frames into the session's segmenter and says when it is gone; the session needs
// nothing else from it, so orchestrator sessions, failover, payments, /status, /update and WHEP
// viewers are the same whoever publishes.

export interface FeedSink {
  /** One H.264 access unit in Annex B, 90 kHz from the publisher's zero. */
  video(annexB: Uint8Array, pts90k: number, dts90k: number, keyframe: boolean): void;
  /** One audio frame in the feed's audio codec (AAC: an ADTS frame), on the same clock. */
  audio(data: Uint8Array, pts90k: number): void;
  /** The publisher left (closed, unpublished, refused for its media). */
  gone(reason: string): void;
}

export interface FeedPublisher {
  readonly kind: 'rtmp';
  /** How its audio is carried to the orchestrator. */
  readonly audioCodec: 'aac';
  /** Starts delivering into the sink. */
  attach(sink: FeedSink): void;
  /** The stream ended: drop the publisher. */
  close(reason: string): void;
  /** For /status (`publisher`). */
  stats(): Record<string, unknown>;
}
