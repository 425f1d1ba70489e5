/**
 * A bus of motors as the control loop sees it, whatever the wire (Dynamixel, CAN). The loop
 * calls read() and write() once per tick from its own thread; both are synchronous, bounded
 * in time, and allocate nothing.
 */
export interface MotorBus {
  readonly name: string;
  /** Motors on this bus, in the order of the arrays below. */
  readonly ids: readonly number[];
  /** Radians in the motor's frame, after the last read. */
  readonly position: Float64Array;
  /** rad/s. */
  readonly velocity: Float64Array;
  /** Amperes, or N m where the motor reports torque (MIT-mode CAN motors); NaN where not sensed. */
  readonly current: Float64Array;
  readonly temperature: Float64Array;
  /** Supply voltage at each motor, volts. */
  readonly voltage: Float64Array;
  /** 1 where the last read got a fresh value for that motor. */
  readonly fresh: Uint8Array;
  /** Per-motor hardware error bits (driver-specific), 0 when none. */
  readonly hardwareError: Uint8Array;
  /** Counters the loop reports. */
  readonly errors: { failedReads: number; retries: number };
  /** Motors go limp (disable()) on e-stop and fault rather than hold: CAN motors, by default. */
  readonly disableOnStop: boolean;
  /**
   * Where frames share a bus (CAN): frames per second, percent of the bitrate (and the bound to
   * warn past), and the controller's state (error-active, error-passive, bus-off).
   */
  readonly load: { framesPerS: number; pct: number; warnPct: number; controller: string } | null;
  /** What opening the bus found that a person should know (a servo's return delay left alone, say). */
  readonly warnings: readonly string[];

  /**
   * Reads every motor once (retrying within the tick). False when some did not answer: their
   * values are the previous ones. Throws (code BUS_FAULT) once reads have failed for longer
   * than the bus's error budget; stays faulted until reset().
   */
  read(): boolean;
  /** Commands positions (radians, motor frame), one per motor. */
  write(positions: Float64Array): void;
  /** Torque off, best effort: used on e-stop (torque_off or disableOnStop) and never throws. */
  disable(): void;
  /** Clears a latched fault (and enables motors disable() left limp). */
  reset(): void;
  /** Words for motor i's hardware error (called when the loop faults on it, never per tick). */
  errorText(motor: number): string;
  /**
   * Why the bus cannot be used at all (its port went away: a USB cable pulled, errno 5), or
   * null. Set by the read() or write() that found it (which throws BUS_FAULT with it); from
   * then on the loop leaves the bus alone until reopen() succeeds. reset() does not clear it.
   */
  readonly lost: string | null;
  /**
   * Opens a lost bus again and brings its motors up as at start (checked, torque on where they
   * stand), with a fresh read, so the loop holds where they are. Rejects with the reason when
   * it cannot. Runs on the control thread's event loop between ticks, never inside one.
   */
  reopen(): Promise<void>;
  close(): Promise<void>;
}
