export type { MotorBus } from './motor-bus.js';
export { defineMotorFamily, type MotorFamily, type MotorMadeSafe, type BusSpec, type OpenBus, type FamilyJoint, type ProblemReport } from './motor-family.js';
export { MotorRegistry, defaultRegistry, openBus, safeBus } from './registry.js';
export { DynamixelMotorBus, DYNAMIXEL_BAUDS, dynamixelFamily, type DynamixelBusConfig } from './dynamixel/index.js';
export { CanMotorBus, CanMotorFault, SocketCan, canFamily, type CanBusConfig } from './can/index.js';
