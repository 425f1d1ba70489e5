export type { MotorBus } from './motor-bus.js';
export { DynamixelMotorBus, type DynamixelBusConfig } from './dynamixel/index.js';
export { CanMotorBus, CanMotorFault, type CanBusConfig } from './can/motor-bus.js';
export { SocketCan } from './can/socket.js';
