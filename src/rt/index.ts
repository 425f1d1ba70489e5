export { monoMs } from './clock.js';
export { sdNotify, nativeUnavailableReason, openPty, ptyBaud, serialIo, type PtyPair, type SerialIo } from './native.js';
export { SystemdNotifier, type NotifySend } from './notify.js';
