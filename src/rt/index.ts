export { monoMs } from './clock.js';
export { sdNotify, nativeUnavailableReason, openPty, ptyBaud, serialIo, frameSockets, flockExclusive, exitAfter, setupRealtime, unlockMemory, tickClock, type TickClock, type PtyPair, type SerialIo, type FrameSockets, type RealtimeReport } from './native.js';
export { SystemdNotifier, type NotifySend } from './notify.js';
export { LatestSlot, SpscRing, FrameSlot } from './channels.js';
export { Histogram, HIST_BUCKETS, bucketOf, bucketUpper, type HistogramSummary } from './metrics.js';
