export type { MotorBus } from './motor-bus.js';
export { DynamixelMotorBus, type DynamixelBusConfig } from './dynamixel/index.js';
