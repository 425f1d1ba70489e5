// A simulated CAN bus of motors, served on the virtual bus's Unix socket: what `reflex sim can`
// runs, and the CAN side of the simulated robot.
import { VirtualCanHub, VirtualCanServer } from '../hardware/can/index.js';
import { monoMs } from '../rt/index.js';
import { simCanMotor, type SimCanFaults, type SimCanMotorSpec, type SimMitMotor, type SimOdriveMotor } from './can-motors.js';

export class SimCanBus {
  readonly hub = new VirtualCanHub();
  private readonly motors = new Map<number, SimMitMotor | SimOdriveMotor>();
  private server: VirtualCanServer | null = null;

  constructor(specs: readonly SimCanMotorSpec[]) {
    for (const s of specs) this.motors.set(s.id, simCanMotor(this.hub, s));
  }

  /** Serves the bus at `path` (what a CAN bus config's `interface` names with transport: virtual). */
  async listen(path: string): Promise<string> {
    this.server = await VirtualCanServer.listen(this.hub, path);
    return path;
  }

  get path(): string | null {
    return this.server?.path ?? null;
  }

  motor(id: number): SimMitMotor | SimOdriveMotor {
    const m = this.motors.get(id);
    if (m === undefined) throw new Error(`no simulated CAN motor ${id}`);
    return m;
  }

  /** Position (rad) of motor `id` now. */
  position(id: number): number {
    const m = this.motor(id);
    m.advance(monoMs());
    return m.position;
  }

  inject(id: number, faults: Partial<SimCanFaults>): void {
    this.motor(id).inject(faults);
  }

  clear(id: number): void {
    this.motor(id).clear();
  }

  async close(): Promise<void> {
    for (const m of this.motors.values()) m.close();
    await this.server?.close();
    this.server = null;
  }
}
