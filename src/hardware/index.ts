export type { MotorBus } from './motor-bus.js';
export { defineMotorFamily, type MotorFamily, type BusSpec, type OpenBus, type FamilyJoint, type ProblemReport } from './motor-family.js';
export { MotorRegistry, defaultRegistry, openBus } from './registry.js';
export { DynamixelMotorBus, DYNAMIXEL_BAUDS, dynamixelFamily, type DynamixelBusConfig } from './dynamixel/index.js';
export { CanMotorBus, CanMotorFault, SocketCan, canFamily, type CanBusConfig } from './can/index.js';
