export { monoMs } from './clock.js';
export { sdNotify, nativeUnavailableReason } from './native.js';
export { SystemdNotifier, type NotifySend } from './notify.js';
