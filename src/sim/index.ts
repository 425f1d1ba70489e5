export { SimDynamixelBus, type SimBusFaults, type SimServoSpec, type SimBusOptions } from './dynamixel-bus.js';
export { SimServo } from './servo.js';
export { SimCamera, simCameraSource, type SimCameraOptions } from './camera.js';
export { render, endEffector, ARM, type Scene } from './scene.js';
export { SimRig, assertPortFree, targetAt, RIG_CAN_BASE, type RigOptions, type TaskScore } from './rig.js';
export { SimMitMotor, SimOdriveMotor, simCanMotor, type SimCanMotor, type SimCanMotorSpec, type SimCanFaults } from './can-motors.js';
export { SimCanBus } from './can-bus.js';
