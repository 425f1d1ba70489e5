export { monoMs } from './clock.js';
export { sdNotify, nativeUnavailableReason, openPty, ptyBaud, serialIo, frameSockets, flockExclusive, peerCred, exitAfter, setupRealtime, keepThreadsOffCpu, unlockMemory, tickClock, type TickClock, type PtyPair, type SerialIo, type FrameSockets, type RealtimeReport, type PeerCred } from './native.js';
export { SystemdNotifier, type NotifySend } from './notify.js';
export { LatestSlot, SpscRing, FrameSlot, Doorbell, BroadcastRing, RingReader } from './channels.js';
export { Histogram, HIST_BUCKETS, bucketOf, bucketUpper, Counters, Words, defineMetrics, type HistogramSummary, type Metrics, type MetricsDefinition, type SlotIndex } from './metrics.js';
export {
  MAX_HORIZON, Observation, Chunk, Tick, MotorHealth, TickRing, TickReader, PolicyLink, allocPolicyLink, defineRecord,
  Intervention, INTERVENTION_NAMES, interventionNames,
  type ObservationRecord, type ChunkRecord, type TickRecord, type MotorHealthRecord, type InterventionName, type PolicyLinkBuffers,
  type RecordDefinition, type RecordLayout, type RecordOf,
} from './records.js';
export { WorkerHost, hostPort, type WorkerHostOptions, type StopOutcome, type HostPort } from './worker-host.js';
