export * from './mit.js';
export * from './odrive.js';
export * from './frame.js';
export type { CanTransport, CanBusState, CanFilter, CanStats } from './transport.js';
export { VirtualCanHub, VirtualCan, type FrameHandler } from './virtual.js';
export { VirtualCanServer } from './virtual-server.js';
export { SocketCan } from './socket.js';
export type { CanMotorSpec } from './protocols.js';
