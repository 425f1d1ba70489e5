export { SimDynamixelBus, type SimBusFaults, type SimServoSpec, type SimBusOptions } from './dynamixel-bus.js';
export { SimServo } from './servo.js';
