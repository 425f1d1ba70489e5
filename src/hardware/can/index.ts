export * from './mit.js';
export * from './odrive.js';
