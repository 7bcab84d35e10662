// The peer systems the benchmark compares tsc-nn with (run by peer-bench.ts, each in its own process).
export const PEER_SYSTEMS = ['tfjs-wasm', 'tfjs-cpu', 'jax-js', 'pytorch', 'onnxruntime'] as const;
export type PeerSystem = (typeof PEER_SYSTEMS)[number];
