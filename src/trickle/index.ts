// Trickle: Livepeer's segmented HTTP pub/sub. A channel is a sequence of segments; each segment is one
// streamed POST from the publisher and one streamed GET per subscriber, both preconnected a segment ahead.
// Hosts of TrickleServer must disable Node's request timeout (`requestTimeout: 0`, or
// `server.requestTimeout = 0` for http2 servers with allowHTTP1): preconnected requests wait body-less.
export { TrickleError, type TrickleErrorKind } from './protocol.ts';
export { type SegmentWriter, TricklePublisher, type TricklePublisherOptions } from './publisher.ts';
export { TrickleServer, type TrickleServerOptions } from './server.ts';
export { type TrickleSegment, TrickleSubscriber, type TrickleSubscriberOptions } from './subscriber.ts';
