// Control tables of the X series (Protocol 2.0), from ROBOTIS's e-manual. The series shares one
// layout; models differ in whether they sense current (XL430/XC430 report load instead), in
// the current unit, and in torque. Ranges are the raw register ranges.

export type Access = 'R' | 'RW';

export interface Field {
  readonly address: number;
  readonly size: 1 | 2 | 4;
  readonly access: Access;
  /** EEPROM fields can only be written while torque is off. */
  readonly eeprom: boolean;
  /** Unit of one raw count, for people. */
  readonly unit: string;
  readonly min: number;
  readonly max: number;
  /** Two's-complement on the wire. */
  readonly signed: boolean;
}

function f(address: number, size: 1 | 2 | 4, access: Access, unit: string, min: number, max: number, signed = false): Field {
  return { address, size, access, eeprom: address < 64, unit, min, max, signed };
}

const I32 = 2 ** 31;

/** Fields every X-series servo has. */
const COMMON = {
  modelNumber: f(0, 2, 'R', '', 0, 0xffff),
  modelInformation: f(2, 4, 'R', '', 0, 0xffffffff),
  firmwareVersion: f(6, 1, 'R', '', 0, 255),
  id: f(7, 1, 'RW', '', 0, 252),
  baudRate: f(8, 1, 'RW', 'code (see BAUD_CODES)', 0, 7),
  returnDelayTime: f(9, 1, 'RW', '2 us', 0, 254),
  driveMode: f(10, 1, 'RW', 'bits', 0, 13),
  operatingMode: f(11, 1, 'RW', 'mode (see OperatingMode)', 0, 16),
  secondaryId: f(12, 1, 'RW', '', 0, 255),
  protocolType: f(13, 1, 'RW', '', 1, 2),
  homingOffset: f(20, 4, 'RW', 'pulse', -1044479, 1044479, true),
  movingThreshold: f(24, 4, 'RW', '0.229 rpm', 0, 1023),
  temperatureLimit: f(31, 1, 'RW', '1 C', 0, 100),
  maxVoltageLimit: f(32, 2, 'RW', '0.1 V', 60, 140),
  minVoltageLimit: f(34, 2, 'RW', '0.1 V', 60, 140),
  pwmLimit: f(36, 2, 'RW', '0.113 %', 0, 885),
  velocityLimit: f(44, 4, 'RW', '0.229 rpm', 0, 1023),
  maxPositionLimit: f(48, 4, 'RW', 'pulse', 0, 4095),
  minPositionLimit: f(52, 4, 'RW', 'pulse', 0, 4095),
  shutdown: f(63, 1, 'RW', 'bits', 0, 255),
  torqueEnable: f(64, 1, 'RW', '', 0, 1),
  led: f(65, 1, 'RW', '', 0, 1),
  statusReturnLevel: f(68, 1, 'RW', '', 0, 2),
  registeredInstruction: f(69, 1, 'R', '', 0, 1),
  hardwareErrorStatus: f(70, 1, 'R', 'bits', 0, 255),
  velocityIGain: f(76, 2, 'RW', '', 0, 16383),
  velocityPGain: f(78, 2, 'RW', '', 0, 16383),
  positionDGain: f(80, 2, 'RW', '', 0, 16383),
  positionIGain: f(82, 2, 'RW', '', 0, 16383),
  positionPGain: f(84, 2, 'RW', '', 0, 16383),
  feedforward2ndGain: f(88, 2, 'RW', '', 0, 16383),
  feedforward1stGain: f(90, 2, 'RW', '', 0, 16383),
  busWatchdog: f(98, 1, 'RW', '20 ms', 0, 127),
  goalPwm: f(100, 2, 'RW', '0.113 %', -885, 885, true),
  goalVelocity: f(104, 4, 'RW', '0.229 rpm', -1023, 1023, true),
  profileAcceleration: f(108, 4, 'RW', '214.577 rev/min^2', 0, 32767),
  profileVelocity: f(112, 4, 'RW', '0.229 rpm', 0, 32767),
  goalPosition: f(116, 4, 'RW', 'pulse', -1048575, 1048575, true),
  realtimeTick: f(120, 2, 'R', '1 ms', 0, 32767),
  moving: f(122, 1, 'R', '', 0, 1),
  movingStatus: f(123, 1, 'R', 'bits', 0, 255),
  presentPwm: f(124, 2, 'R', '0.113 %', -885, 885, true),
  /** Present Current on current-sensing models, Present Load (0.1 %) on XL430/XC430. */
  presentCurrent: f(126, 2, 'R', 'current unit', -32768, 32767, true),
  presentVelocity: f(128, 4, 'R', '0.229 rpm', -I32, I32 - 1, true),
  presentPosition: f(132, 4, 'R', 'pulse', -I32, I32 - 1, true),
  velocityTrajectory: f(136, 4, 'R', '0.229 rpm', -I32, I32 - 1, true),
  positionTrajectory: f(140, 4, 'R', 'pulse', -I32, I32 - 1, true),
  presentInputVoltage: f(144, 2, 'R', '0.1 V', 0, 300),
  presentTemperature: f(146, 1, 'R', '1 C', 0, 100),
  backupReady: f(147, 1, 'R', '', 0, 1),
  /** Indirect Address 1 (of 28 at 168..222): each holds the address its Indirect Data byte maps to. */
  indirectAddress1: f(168, 2, 'RW', 'address', 64, 661),
  /** Indirect Data 1 (of 28 at 224..251). */
  indirectData1: f(224, 1, 'RW', '', 0, 255),
} as const;

/** Fields only current-sensing models have. */
const CURRENT = {
  currentLimit: f(38, 2, 'RW', 'current unit', 0, 2047),
  goalCurrent: f(102, 2, 'RW', 'current unit', -2047, 2047, true),
} as const;

export type FieldName = keyof typeof COMMON | keyof typeof CURRENT;
export type ControlTable = Readonly<Partial<Record<FieldName, Field>>> & Readonly<Record<keyof typeof COMMON, Field>>;

const WITH_CURRENT: ControlTable = { ...COMMON, ...CURRENT };
const WITHOUT_CURRENT: ControlTable = COMMON;

/** Indirect addresses: 28 of them in the first block. */
export const INDIRECT = { addressBase: 168, dataBase: 224, count: 28 } as const;

export interface ServoModel {
  readonly name: string;
  readonly number: number;
  readonly table: ControlTable;
  /** mA per raw count of Present/Goal Current; null where the model senses load, not current. */
  readonly currentUnitMa: number | null;
  /** Stall torque (N m) and stall current (A) at the nominal voltage: torque ~ current * (stall torque / stall current). */
  readonly stallTorqueNm: number;
  readonly stallCurrentA: number;
  /** Maximum of Current Limit, raw. */
  readonly currentLimitMax: number;
}

function model(name: string, number: number, currentUnitMa: number | null, stallTorqueNm: number, stallCurrentA: number, currentLimitMax = 1193): ServoModel {
  return { name, number, table: currentUnitMa === null ? WITHOUT_CURRENT : WITH_CURRENT, currentUnitMa, stallTorqueNm, stallCurrentA, currentLimitMax };
}

/** Model numbers as Ping returns them. Torque figures are the e-manual's at 12 V (5 V for XL330). */
export const MODELS: readonly ServoModel[] = [
  model('xl330-m077', 1190, 1, 0.228, 1.47, 1750),
  model('xl330-m288', 1200, 1, 0.52, 1.47, 1750),
  model('xl430-w250', 1060, null, 1.5, 1.4),
  model('2xl430-w250', 1090, null, 1.5, 1.4),
  model('xc430-w150', 1070, null, 1.4, 1.4),
  model('xc430-w240', 1080, null, 1.9, 1.4),
  model('xm430-w210', 1030, 2.69, 3.0, 2.3),
  model('xm430-w350', 1020, 2.69, 4.1, 2.3),
  model('xh430-w210', 1010, 1.34, 2.5, 1.3, 648),
  model('xh430-w350', 1000, 1.34, 3.4, 1.3, 648),
  model('xh430-v210', 1050, 1.34, 2.5, 1.3, 689),
  model('xh430-v350', 1040, 1.34, 3.4, 1.3, 689),
  model('xm540-w150', 1130, 2.69, 7.3, 4.4, 2047),
  model('xm540-w270', 1120, 2.69, 10.6, 4.4, 2047),
  model('xh540-w150', 1110, 2.69, 7.5, 4.9, 2047),
  model('xh540-w270', 1100, 2.69, 10.6, 4.4, 2047),
  model('xh540-v150', 1150, 2.69, 7.5, 4.9, 2047),
  model('xh540-v270', 1140, 2.69, 10.6, 4.4, 2047),
];

export function modelByNumber(number: number): ServoModel | undefined {
  return MODELS.find((m) => m.number === number);
}

export function modelByName(name: string): ServoModel | undefined {
  const n = name.toLowerCase();
  return MODELS.find((m) => m.name === n);
}

/** Baud Rate (address 8) codes of the X series. */
export const BAUD_CODES: Readonly<Record<number, number>> = {
  0: 9600,
  1: 57600,
  2: 115200,
  3: 1000000,
  4: 2000000,
  5: 3000000,
  6: 4000000,
  7: 4500000,
};

export function baudCode(baud: number): number | undefined {
  for (const [code, b] of Object.entries(BAUD_CODES)) if (b === baud) return Number(code);
  return undefined;
}

export const OperatingMode = {
  CURRENT: 0,
  VELOCITY: 1,
  POSITION: 3,
  EXTENDED_POSITION: 4,
  CURRENT_BASED_POSITION: 5,
  PWM: 16,
} as const;

/** Fast Sync Read arrived in X-series firmware 45. */
export const FAST_SYNC_READ_MIN_FIRMWARE = 45;
