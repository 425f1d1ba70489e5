// `reflex motors scan|info|enable|disable|zero --can IFACE --protocol mit|odrive`: the
// technician's CAN motor tools. Like the Dynamixel ones they open the bus themselves, so they
// are for a stopped daemon; SocketCAN has no lock, so the daemon is asked instead, and a daemon
// that drives the interface (or whose buses cannot be told apart) is a refusal.
import { statSync } from 'node:fs';
import { request } from '../api/wire.js';
import { ReflexError } from '../core/index.js';
import {
  AxisState, CUBEMARS_ERRORS, CanFlag, ControlMode, DAMIAO_STATUS, InputMode, MIT_ENTER, MIT_EXIT, MIT_ZERO, MitReplyAt, OdriveCmd,
  OdriveCmdExtra, SocketCan, arbitrationId, decodeEncoderEstimates, decodeHeartbeat, decodeTemperature, mitModel, packMit,
  setAxisState, setControllerMode, setInputPos, unpackMit, type CanTransport, type MitDialect, type MitRanges,
} from '../hardware/can/index.js';
import type { Config } from '../config/index.js';
import { optionalConfig } from './program.js';
import { parseIds } from './sim.js';

export interface CanMotorArgs {
  can?: string | undefined;
  protocol?: string | undefined;
  model?: string | undefined;
  ids?: string | undefined;
  id?: string | undefined;
  virtual?: boolean | undefined;
  allowEnable?: boolean | undefined;
  socket?: string | undefined;
  config?: string | undefined;
}

/** What one motor reports; null where its protocol does not say. */
export interface CanMotorReport {
  id: number;
  model: string;
  /** Under control (MIT motor mode, ODrive closed loop); null where the reply does not say (CubeMars). */
  enabled: boolean | null;
  position: number;
  velocity: number;
  /** N m (MIT). */
  torque: number | null;
  temperatureC: number | null;
  error: number;
  errorText: string;
  /** ODrive's axis state number. */
  axisState: number | null;
}

export interface CanMotorResult {
  text: string;
  value: unknown;
}

const PROTOCOLS = ['mit', 'odrive'] as const;
type Protocol = (typeof PROTOCOLS)[number];

function usage(message: string): never {
  throw new ReflexError('BAD_REQUEST', message);
}

function protocolOf(args: CanMotorArgs): Protocol {
  const p = args.protocol;
  if (!PROTOCOLS.includes(p as Protocol)) usage(`--protocol ${p ?? '(none)'}: want mit (CubeMars AK, Damiao DM-J) or odrive`);
  return p as Protocol;
}

/** The MIT model gives the reply's scaling and dialect; the simulator's default when none is named. */
function mitOf(args: CanMotorArgs): { model: string; ranges: MitRanges; dialect: MitDialect } {
  const model = (args.model ?? 'ak80-9').toLowerCase();
  const m = mitModel(model);
  if (m === null) usage(`--model ${args.model}: not an MIT-mode model (ak60-6, ak70-10, ak80-9, ak10-9, dm-j4310, dm-j4340)`);
  return { model, ...m };
}

function idOf(args: CanMotorArgs, max: number): number {
  const n = Number(args.id);
  if (args.id === undefined || !Number.isInteger(n) || n < 0 || n > max) usage(`--id ${args.id ?? '(none)'}: want an integer from 0 to ${max}`);
  return n;
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Refuses when a running daemon drives this interface (or may: its config is not known here). */
async function requireDaemonStopped(iface: string, args: CanMotorArgs): Promise<void> {
  let config: Config | null = null;
  try {
    config = optionalConfig(args);
  } catch {
    config = null;
  }
  const socket = args.socket ?? process.env.REFLEX_CONTROL_SOCKET ?? config?.socket.path ?? '/run/reflex/control.sock';
  let status: { loop: { buses: { name: string }[] } };
  try {
    status = await request(socket, 'status', {}, 1500);
  } catch {
    return; // no daemon answers there
  }
  const mine = (config?.buses ?? []).find((b) => (b as { interface?: string }).interface === iface);
  const unknown = config === null && status.loop.buses.length > 0;
  if (mine || unknown) {
    throw new ReflexError(
      'REFUSED',
      `the reflex daemon (${socket}) ${mine ? `drives ${iface} as its bus ${mine.name}` : `runs and may drive ${iface} (pass --config to tell)`}: two masters on one CAN bus fight over the motors. Stop it first (\`systemctl stop reflex\`), or ask it (\`reflex hardware\`)`,
    );
  }
}

function openBus(iface: string, args: CanMotorArgs): CanTransport {
  try {
    return args.virtual || iface.includes('/') || isSocket(iface) ? SocketCan.connectVirtual(iface) : SocketCan.open(iface);
  } catch (err) {
    throw new ReflexError('NOT_CONNECTED', `${err instanceof Error ? err.message : String(err)}${args.virtual ? '' : ' (bring it up: ip link set IFACE up type can bitrate 1000000)'}`, { disconnected: true, cause: err });
  }
}

type Frame = (id: number, data: Uint8Array, length: number, flags: number) => boolean;

/** Takes frames until `take` says it has what it wants, or timeoutMs ran out; false on timeout. */
function collect(t: CanTransport, timeoutMs: number, take: Frame): boolean {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  for (;;) {
    t.receive((id, data, length, flags) => {
      if (!done) done = take(id, data, length, flags);
    });
    if (done) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    t.wait(Math.min(left, 50) * 1000);
  }
}

function send(t: CanTransport, id: number, data: Uint8Array, length: number, flags = 0): void {
  // A SocketCAN queue of 10 frames can be full for a moment; then the frame is offered again.
  for (let i = 0; i < 20; i++) {
    if (t.send(id, data, length, flags)) return;
    t.wait(2000);
  }
  throw new ReflexError('NOT_CONNECTED', `${t.name}: the bus takes no frames (${t.state})`, { disconnected: true });
}

const fmt = (x: number | null, d: number, unit: string) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(d)}${unit}`);

// ---- MIT mode ----

class Mit {
  private readonly reply = new Float64Array(6);
  constructor(
    private readonly t: CanTransport,
    readonly m: { model: string; ranges: MitRanges; dialect: MitDialect },
  ) {}

  /**
   * MIT mode has no read-only request. A command with no gains and no torque is what asks here:
   * it cannot produce torque and leaves motor mode as it was; the motor answers with its state.
   */
  query(id: number, timeoutMs: number): CanMotorReport | null {
    const zero = new Uint8Array(8);
    packMit(new Float64Array(5), this.m.ranges, zero);
    return this.exchange(id, zero, timeoutMs);
  }

  /** Sends a special or command frame to motor `id` and decodes its reply. */
  exchange(id: number, frame: Uint8Array, timeoutMs: number): CanMotorReport | null {
    this.t.receive(() => {}); // what was on the bus before the question is no answer to it
    send(this.t, id, frame, 8);
    let report: CanMotorReport | null = null;
    collect(this.t, timeoutMs, (_canId, data, length, flags) => {
      if (flags !== 0 || (length !== 8 && length !== 6)) return false;
      const key = this.m.dialect === 'damiao' ? data[0]! & 0x0f : data[0]!;
      if (key !== id || !unpackMit(data, length, this.m.ranges, this.m.dialect, this.reply)) return false;
      report = this.report(id, length);
      return true;
    });
    return report;
  }

  private report(id: number, length: number): CanMotorReport {
    const r = this.reply;
    const raw = r[MitReplyAt.ERROR]!;
    const damiao = this.m.dialect === 'damiao';
    // Damiao's nibble is a state (0 disabled, 1 enabled) or a fault; CubeMars sends an error code.
    const error = damiao ? (raw > 1 ? raw : 0) : raw;
    const names = damiao ? DAMIAO_STATUS : CUBEMARS_ERRORS;
    return {
      id,
      model: this.m.model,
      enabled: damiao && raw <= 1 ? raw === 1 : null,
      position: r[MitReplyAt.P]!,
      velocity: r[MitReplyAt.V]!,
      torque: r[MitReplyAt.T]!,
      temperatureC: length === 8 ? r[MitReplyAt.TEMPERATURE]! : null,
      error,
      errorText: error === 0 ? 'none' : `${names[error] ?? 'unknown'} (0x${error.toString(16)})`,
      axisState: null,
    };
  }
}

// ---- ODrive CANSimple ----

class Odrive {
  constructor(private readonly t: CanTransport) {}

  /** RTR requests and the periodic heartbeat: reading an ODrive changes nothing on it. */
  query(node: number, timeoutMs: number, heartbeat: boolean): CanMotorReport | null {
    const none = new Uint8Array(0);
    this.t.receive(() => {});
    send(this.t, arbitrationId(node, OdriveCmd.GET_ENCODER_ESTIMATES), none, 0, CanFlag.RTR);
    send(this.t, arbitrationId(node, OdriveCmdExtra.GET_TEMPERATURE), none, 0, CanFlag.RTR);
    let est: { pos: number; vel: number } | null = null;
    let temp: { fet: number; motor: number } | null = null;
    let hb: ReturnType<typeof decodeHeartbeat> = null;
    const ok = collect(this.t, timeoutMs, (id, data, length, flags) => {
      if (flags !== 0 || ((id >> 5) & 0x3f) !== node) return false;
      const cmd = id & 0x1f;
      if (cmd === OdriveCmd.GET_ENCODER_ESTIMATES) est = decodeEncoderEstimates(data, length) ?? est;
      else if (cmd === OdriveCmdExtra.GET_TEMPERATURE) temp = decodeTemperature(data, length) ?? temp;
      else if (cmd === OdriveCmd.HEARTBEAT) hb = decodeHeartbeat(data, length) ?? hb;
      return est !== null && temp !== null && (!heartbeat || hb !== null);
    });
    // The estimates are the answer; the heartbeat (every 100 ms by default) may be switched off.
    if (!ok && est === null) return null;
    const e = est as { pos: number; vel: number } | null;
    const tc = temp as { fet: number; motor: number } | null;
    const h = hb as ReturnType<typeof decodeHeartbeat>;
    const error = h?.axisError ?? 0;
    const names: string[] = [];
    if (error & 0x40) names.push('MOTOR_FAILED');
    if (error & 0x800) names.push('WATCHDOG_TIMER_EXPIRED');
    return {
      id: node,
      model: 'odrive',
      enabled: h === null ? null : h.axisState === AxisState.CLOSED_LOOP_CONTROL,
      position: e!.pos * 2 * Math.PI,
      velocity: e!.vel * 2 * Math.PI,
      torque: null,
      temperatureC: tc === null ? null : Math.max(tc.fet, Number.isFinite(tc.motor) ? tc.motor : -Infinity),
      error,
      errorText: h === null ? '- (no heartbeat yet)' : error === 0 ? 'none' : `axis error 0x${error.toString(16)}${names.length ? ` (${names.join(', ')})` : ''}`,
      axisState: h?.axisState ?? null,
    };
  }

  /** Closed loop holding where the axis is now (input = present position), with the drive's own limits. */
  enable(node: number, turns: number): void {
    const f = new Uint8Array(8);
    send(this.t, arbitrationId(node, OdriveCmd.CLEAR_ERRORS), f, 0);
    send(this.t, arbitrationId(node, OdriveCmd.SET_CONTROLLER_MODE), f, setControllerMode(ControlMode.POSITION_CONTROL, InputMode.PASSTHROUGH, f));
    send(this.t, arbitrationId(node, OdriveCmd.SET_INPUT_POS), f, setInputPos(turns, 0, 0, f));
    send(this.t, arbitrationId(node, OdriveCmd.SET_AXIS_STATE), f, setAxisState(AxisState.CLOSED_LOOP_CONTROL, f));
  }

  disable(node: number): void {
    const f = new Uint8Array(8);
    send(this.t, arbitrationId(node, OdriveCmd.SET_AXIS_STATE), f, setAxisState(AxisState.IDLE, f));
  }
}

// ---- the verbs ----

function formatReport(r: CanMotorReport): string {
  const state = r.enabled === null ? (r.axisState === null ? 'state not reported' : `axis state ${r.axisState}`) : r.enabled ? 'enabled' : 'disabled';
  return [
    `motor ${r.id}: ${r.model}, ${state}`,
    `position ${fmt(r.position, 4, ' rad')}, velocity ${fmt(r.velocity, 3, ' rad/s')}, torque ${fmt(r.torque, 2, ' N m')}, temperature ${fmt(r.temperatureC, 0, ' C')}`,
    `error ${r.errorText}`,
  ].join('\n') + '\n';
}

function formatScan(hits: readonly CanMotorReport[]): string {
  if (hits.length === 0) return 'no motors answered\n';
  const rows = [
    ['id', 'model', 'state', 'position', 'temperature', 'error'],
    ...hits.map((h) => [String(h.id), h.model, h.enabled === null ? '-' : h.enabled ? 'enabled' : 'disabled', fmt(h.position, 3, ' rad'), fmt(h.temperatureC, 0, ' C'), h.errorText]),
  ];
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(w[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function noAnswer(id: number, iface: string, protocol: Protocol, extra = ''): never {
  throw new ReflexError('BUS_ERROR', `motor ${id} does not answer on ${iface} (no reply in 500 ms; ${protocol === 'odrive' ? 'ODrive node id' : 'MIT id'} ${id}: wrong id, protocol, bitrate, or no power?)${extra}`, { timeout: true });
}

const CUBEMARS_SILENT =
  '; a CubeMars motor out of motor mode may answer only the enter frame (its manual reads state that way): `--allow-enable` asks so, entering and at once leaving motor mode (no torque is commanded)';

/** Runs one CAN `reflex motors VERB`. */
export async function canMotors(verb: string, args: CanMotorArgs): Promise<CanMotorResult> {
  const iface = args.can;
  if (iface === undefined || iface === '') usage('missing --can IFACE (can0, or the virtual bus socket with --virtual)');
  const protocol = protocolOf(args);
  const mit = protocol === 'mit' ? mitOf(args) : null;
  const maxId = protocol === 'odrive' ? 63 : mit!.dialect === 'damiao' ? 15 : 255;
  const ids = verb === 'scan' ? parseIds(args.ids ?? (protocol === 'odrive' ? '0-63' : `1-${Math.min(32, maxId)}`)) : [idOf(args, maxId)];
  if (ids.some((i) => i > maxId)) usage(`--ids ${args.ids}: ${protocol === 'odrive' ? 'ODrive node ids' : `${mit!.dialect} ids`} go up to ${maxId}`);
  if (!['scan', 'info', 'enable', 'disable', 'zero'].includes(verb)) usage(`unknown verb ${verb}`);
  await requireDaemonStopped(iface, args);
  const t = openBus(iface, args);
  try {
    return protocol === 'mit' ? runMit(verb, ids, new Mit(t, mit!), iface, args) : runOdrive(verb, ids, new Odrive(t), iface);
  } finally {
    t.close();
  }
}

function runMit(verb: string, ids: number[], mit: Mit, iface: string, args: CanMotorArgs): CanMotorResult {
  const cubemars = mit.m.dialect === 'cubemars';
  if (verb === 'scan') {
    const hits: CanMotorReport[] = [];
    let entered = 0;
    for (const id of ids) {
      let r = mit.query(id, 60);
      if (r === null && args.allowEnable) {
        r = mit.exchange(id, MIT_ENTER, 60);
        if (r !== null) {
          entered++;
          mit.exchange(id, MIT_EXIT, 60);
          r.enabled = false;
        }
      }
      if (r !== null) hits.push(r);
    }
    const note = `values scaled as ${mit.m.model}${args.model === undefined ? ' (pass --model for another)' : ''}${entered ? `; ${entered} answered only the enter frame and were taken out of motor mode again` : ''}\n`;
    const hint = hits.length === 0 && cubemars && !args.allowEnable ? `${CUBEMARS_SILENT.slice(2)}\n` : '';
    return { text: formatScan(hits) + note + hint, value: { motors: hits } };
  }
  const id = ids[0]!;
  const silent = cubemars ? CUBEMARS_SILENT : '';
  switch (verb) {
    case 'info': {
      const r = mit.query(id, 500) ?? noAnswer(id, iface, 'mit', silent);
      return { text: formatReport(r), value: r };
    }
    case 'enable': {
      // Entering motor mode with no command yet: gains and torque zero, so it holds nothing until commanded.
      const r = mit.exchange(id, MIT_ENTER, 500) ?? noAnswer(id, iface, 'mit');
      if (r.enabled === false || r.error !== 0) throw new ReflexError('REFUSED', `motor ${id} did not enter motor mode: ${r.errorText === 'none' ? 'it reports disabled' : r.errorText}`);
      r.enabled = cubemars ? null : true;
      return {
        text: `motor ${id} entered motor mode (no torque until commanded)\n` + (cubemars ? '' : 'a Damiao with a CAN timeout set leaves motor mode by itself when no command follows\n'),
        value: r,
      };
    }
    case 'disable': {
      const r = mit.exchange(id, MIT_EXIT, 500) ?? noAnswer(id, iface, 'mit');
      return { text: `motor ${id} left motor mode (limp)\n`, value: r };
    }
    case 'zero': {
      const before = mit.query(id, 500) ?? noAnswer(id, iface, 'mit', silent);
      // Damiao takes a new zero only disabled. CubeMars' reply does not say whether it is in motor
      // mode, and a zero under a held position command would make it jump: it is taken out first.
      if (before.enabled === true) throw new ReflexError('REFUSED', `motor ${id} is enabled: disable it first (\`reflex motors disable --can ${iface} --protocol mit --id ${id}\`); a new zero under a held command moves the joint`);
      if (cubemars) mit.exchange(id, MIT_EXIT, 500);
      mit.exchange(id, MIT_ZERO, 500);
      const after = mit.query(id, 500) ?? noAnswer(id, iface, 'mit', silent);
      if (Math.abs(after.position) > 0.01) throw new ReflexError('BUS_ERROR', `motor ${id} still reports ${after.position.toFixed(4)} rad after set-zero`);
      // Whether the firmware writes the new zero to flash differs by vendor and version, and is
      // not checked here: said so rather than promised.
      const persists = 'whether it survives a power cycle depends on the motor\'s firmware: check with `info` after one';
      return {
        text: `motor ${id}: position ${before.position.toFixed(4)} rad is now zero${cubemars ? ' (taken out of motor mode first)' : ''}; ${persists}\n`,
        value: { id, before: before.position, after: after.position, persists: 'unknown' },
      };
    }
  }
  return usage(`unknown verb ${verb}`);
}

function runOdrive(verb: string, ids: number[], od: Odrive, iface: string): CanMotorResult {
  if (verb === 'scan') {
    const hits = ids.map((id) => od.query(id, 60, false)).filter((r): r is CanMotorReport => r !== null);
    return { text: formatScan(hits) + (hits.some((h) => h.enabled === null) ? 'state from the heartbeat: `info --id N` waits for it\n' : ''), value: { motors: hits } };
  }
  const id = ids[0]!;
  switch (verb) {
    case 'info': {
      const r = od.query(id, 500, true) ?? noAnswer(id, iface, 'odrive');
      return { text: formatReport(r), value: r };
    }
    case 'enable': {
      const before = od.query(id, 500, false) ?? noAnswer(id, iface, 'odrive');
      od.enable(id, before.position / (2 * Math.PI));
      // The heartbeat after the request says whether the axis went closed loop.
      const after = waitFor(() => od.query(id, 300, true), (r) => r.enabled === true, 1500);
      if (after?.enabled !== true) throw new ReflexError('REFUSED', `axis ${id} did not enter closed-loop control: ${after?.errorText ?? 'no heartbeat'}`);
      return { text: `axis ${id} in closed-loop control, holding ${before.position.toFixed(4)} rad (its watchdog, when set, disarms it when no command follows)\n`, value: after };
    }
    case 'disable': {
      if (od.query(id, 500, false) === null) noAnswer(id, iface, 'odrive');
      od.disable(id);
      const after = waitFor(() => od.query(id, 300, true), (r) => r.enabled === false, 1500);
      if (after?.enabled !== false) throw new ReflexError('BUS_ERROR', `axis ${id} did not report idle`, { timeout: true });
      return { text: `axis ${id} idle (limp)\n`, value: after };
    }
    case 'zero':
      throw new ReflexError('REFUSED', 'zero is not offered for ODrive: CANSimple\'s set-absolute-position differs by firmware; set the offset with odrivetool (it persists after save_configuration)');
  }
  return usage(`unknown verb ${verb}`);
}

function waitFor(ask: () => CanMotorReport | null, ok: (r: CanMotorReport) => boolean, ms: number): CanMotorReport | null {
  const deadline = Date.now() + ms;
  let r: CanMotorReport | null = null;
  do {
    r = ask() ?? r;
    if (r !== null && ok(r)) return r;
  } while (Date.now() < deadline);
  return r;
}
