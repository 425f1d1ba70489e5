export * from './mit.js';
export * from './odrive.js';
export type { CanTransport, CanBusState, CanFilter, CanStats } from './transport.js';
export { VirtualCanHub, VirtualCan } from './virtual.js';
