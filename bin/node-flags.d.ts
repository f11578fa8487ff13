// Types for node-flags.js (the gateway's Node flags).
export declare const GATEWAY_NODE_FLAGS: readonly string[];
