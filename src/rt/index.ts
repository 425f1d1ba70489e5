export { monoMs } from './clock.js';
export { sdNotify, nativeUnavailableReason, openPty, ptyBaud, type PtyPair } from './native.js';
export { SystemdNotifier, type NotifySend } from './notify.js';
