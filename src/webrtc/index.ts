// Public surface of the WebRTC layer: WHIP ingest and WHEP egress peers on werift, and offer checks.
export {
  EgressPeer,
  type EgressPeerOptions,
  type EgressStats,
  type EgressTrackStats,
  type KeyframeRequestListener,
} from './egress-peer.ts';
export {
  IcePatchError,
  type IcePatchErrorCode,
  type IcePatchResult,
} from './ice-patch.ts';
export {
  IcePorts,
  IcePortsFullError,
  type IcePortsOptions,
  type IcePortsStats,
  machineAddresses,
} from './ice-ports.ts';
export {
  IngestPeer,
  type IngestPeerOptions,
  type IngestStats,
  type IngestTrackStats,
  type RtpListener,
} from './ingest-peer.ts';
export { NackGenerator, type NackGeneratorOptions, seqDistance } from './nack-generator.ts';
export { LOOPBACK_NETWORK, type PeerNetworkOptions } from './network.ts';
export {
  AnswerFailedError,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_GATHER_TIMEOUT_MS,
  DEFAULT_INACTIVITY_TIMEOUT_MS,
  type NegotiatedCodec,
  type PeerOptions,
  type PeerState,
  type PeerTimeoutOptions,
  type StateListener,
} from './peer-session.ts';
export {
  ACCEPTED_AUDIO_DESCRIPTION,
  ACCEPTED_VIDEO_DESCRIPTION,
  type AcceptedMedia,
  checkOffer,
  type OfferCheck,
  type OfferPurpose,
  OfferRejectedError,
  SDP_LIMITS,
} from './sdp.ts';
export { decodeSdp, SdpParseError } from './sdp-parse.ts';
export { SDPFRAG_CONTENT_TYPE, SDPFRAG_LIMITS } from './sdpfrag.ts';
export { egressBatching } from './udp-send.ts';
export { WeriftInternalsError } from './werift-ice.ts';
