// One tick of the control loop, apart from threads and timing: read the buses, publish the
// observation, take the action, make it safe, write the buses, account. Synchronous and
// allocation-free after construction; the worker calls tick() on each deadline.
import type { MotorBus } from '../hardware/index.js';
import type { ControlConfig } from './config.js';
import { ChunkExecutor } from './executor.js';
import { SafetyFilter } from './safety.js';
import { Intervention, MAX_HORIZON, MotorHealth, Tick, type ChunkRecord, type MotorHealthRecord, type ObservationRecord, type TickRecord } from '../rt/index.js';
import { JOG, Mode, type LoopShared } from './shared.js';

/** Where a joint's motor sits: which bus, which index there. */
interface JointRef {
  bus: number;
  motor: number;
  offset: number;
  direction: number;
}

/** Rare events the core reports out of the tick (the worker posts them to the main thread). */
export interface CoreEvents {
  /** `further`: another fault while the loop already holds in fault (it changes nothing, but a technician must see it). */
  fault(reason: string, further?: boolean): void;
  warning(message: string): void;
  /** A bus's port went away (bus.lost says why): the loop leaves it alone until it is reopened. */
  lost(bus: string, reason: string): void;
}

export class ControlCore {
  readonly executor: ChunkExecutor;
  readonly safety: SafetyFilter;
  private readonly n: number;
  private readonly refs: JointRef[];
  private readonly q: Float64Array;
  private readonly dq: Float64Array;
  private readonly effort: Float64Array;
  private readonly desired: Float64Array;
  private readonly cmd: Float64Array;
  private readonly prev: Float64Array;
  private readonly hold: Float64Array;
  private readonly motorCmd: Float64Array[];
  private readonly obs: ObservationRecord;
  private readonly motorRec: MotorHealthRecord;
  private readonly chunk: ChunkRecord;
  /** This tick's record, written into the tick ring at its end. */
  private readonly rec: TickRecord;
  /** Intervention bits gathered during this tick. */
  private interventions = 0;
  private chunkVersion = 0;
  /** Ticks since the policy started without its first chunk yet (holding, not starving). */
  private primingTicks = -1;
  private mode: number = Mode.HOLD;
  private torqueIsOff = false;
  private started = false;
  /** Per bus: 1 while its load is past the warning bound (warned once per crossing). */
  private readonly loadWarned: Uint8Array;
  /**
   * Per bus: 1 from the tick that found it lost until a reset takes it back. Not bus.lost: a
   * reopen may finish a tick before the reset, and until then the loop's hold pose is the old
   * one; commanding it to the reopened servos would move them.
   */
  private readonly away: Uint8Array;
  /** Per bus, this tick: 0 read ok, 1 some motors did not answer (see bus.fresh), 2 not read at all. */
  private readonly readOutcome: Uint8Array;
  /** Per joint, the motor's hardware error last reported, so each new one is reported once. */
  private readonly hwReported: Uint8Array;
  /** Per bus: its driver's retry count at the last tick (a reopened bus starts its count again). */
  private readonly retriesSeen: Float64Array;
  /** Per bus: the CAN controller state last reported, and the tick it was reported at. */
  private readonly controllerSeen: string[];
  private readonly controllerSeenAt: Float64Array;
  /** The jog slot's last values read, and the jog they describe (joint -1: none). */
  private readonly jogIn = new Float64Array(JOG.LENGTH);
  private jogVersion = 0;
  private jogJoint = -1;
  private jogTarget = 0;
  private jogStep = 0;
  private jogDeadline = 0;

  constructor(
    private readonly cfg: ControlConfig,
    private readonly buses: readonly MotorBus[],
    private readonly shared: LoopShared,
    private readonly events: CoreEvents,
  ) {
    this.n = cfg.joints.length;
    this.refs = cfg.joints.map((j) => {
      const b = buses.findIndex((x) => x.name === j.bus);
      const m = b < 0 ? -1 : buses[b]!.ids.indexOf(j.id);
      if (b < 0 || m < 0) throw new Error(`joint ${j.name}: motor ${j.id} not on an open bus ${j.bus}`);
      return { bus: b, motor: m, offset: j.offset, direction: j.direction };
    });
    const n = this.n;
    this.q = new Float64Array(n);
    this.dq = new Float64Array(n);
    this.effort = new Float64Array(n);
    this.desired = new Float64Array(n);
    this.cmd = new Float64Array(n);
    this.prev = new Float64Array(n);
    this.hold = new Float64Array(n);
    this.motorCmd = buses.map((b) => new Float64Array(b.ids.length));
    this.loadWarned = new Uint8Array(buses.length);
    this.away = new Uint8Array(buses.length);
    this.readOutcome = new Uint8Array(buses.length);
    this.hwReported = new Uint8Array(cfg.joints.length);
    this.retriesSeen = new Float64Array(buses.length);
    this.controllerSeen = buses.map(() => 'error-active');
    this.controllerSeenAt = new Float64Array(buses.length).fill(-Infinity);
    this.obs = shared.link.observationRecord();
    this.motorRec = MotorHealth.view(this.n);
    this.chunk = shared.link.chunkRecord();
    this.rec = Tick.view(n);
    this.executor = new ChunkExecutor({
      dof: n,
      blend: cfg.chunk.blend,
      overlapTicks: cfg.chunk.overlapTicks,
      ensembleDecay: cfg.chunk.ensembleDecay,
      refillTicks: cfg.chunk.refillTicks,
      // A request that got no chunk (a failed or refused inference) is asked again soon; the
      // inference worker coalesces requests, so asking early never queues work.
      requestTimeoutTicks: Math.max(5, Math.round(cfg.rateHz / 10)),
      capacity: MAX_HORIZON * 2 + cfg.chunk.refillTicks,
    });
    const period = 1 / cfg.rateHz;
    this.safety = new SafetyFilter(cfg.joints.map((j) => ({ min: j.min, max: j.max, maxVelocity: j.maxVelocity })), period, cfg.softStartTicks);
  }

  /** One tick. `k` is the tick index (deadline count), `now` its wake-up time. */
  tick(k: number, now: number): void {
    const c = this.shared.counters;
    const rec = this.rec;
    this.interventions = 0;
    rec.action.fill(NaN);
    const busOk = this.readBuses();
    if (!this.started) {
      // The first command is the measured pose: the loop starts in hold, where the arm is.
      this.prev.set(this.q);
      this.hold.set(this.q);
      this.started = true;
    }
    this.publish(k, now);
    if (!busOk) c.add('busFailedReads');

    let chunkAge = -1;
    switch (this.mode) {
      case Mode.POLICY:
        c.add('policyTicks');
        this.takeChunk(k);
        if (this.executor.next(k, this.desired)) {
          rec.action.set(this.desired);
          chunkAge = k - this.executor.playingObsTick;
          if (this.primingTicks >= 0) {
            // The first action: the soft start ramps from here (the pose held while priming).
            this.safety.softStart(this.prev);
            this.primingTicks = -1;
          }
          break;
        }
        this.desired.set(this.prev);
        if (this.primingTicks >= 0) {
          // Waiting for the first chunk: hold where the soft start begins.
          if (++this.primingTicks > this.cfg.firstChunkTicks) {
            this.fault(`policy gave no first chunk in ${this.primingTicks} ticks (limit ${this.cfg.firstChunkTicks})`);
          }
          break;
        }
        // Starved: hold the last safe command, count it, and fault past the bound.
        c.add('starvedTicks');
        this.interventions |= Intervention.STARVED;
        if (this.executor.consecutiveStarved > this.cfg.starvationLimitTicks) {
          this.fault(`policy starved: no action for ${this.executor.consecutiveStarved} ticks (limit ${this.cfg.starvationLimitTicks})`);
        }
        break;
      case Mode.HOLD:
        this.jog(now);
        this.desired.set(this.hold);
        break;
      case Mode.ESTOP:
      case Mode.FAULT:
        this.desired.set(this.hold);
        break;
    }
    c.set('chunkAgeTicks', chunkAge);
    // The observation just published carries the tick: the bell only says a chunk is wanted.
    if (this.mode === Mode.POLICY && this.executor.wantsRefill(k)) this.shared.link.request.ring();

    this.filter(this.desired, this.cmd);
    this.prev.set(this.cmd);
    if (!this.torqueIsOff) this.writeBuses();
    this.account(k);
    this.record(k, now);
  }

  /** The safety filter, noting which of its rules changed the command. */
  private filter(desired: Float64Array, out: Float64Array): void {
    const s = this.safety.stats;
    const limit = s.limitClamps;
    const delta = s.deltaClamps;
    const nonFinite = s.nonFinite;
    if (this.safety.rampingIn) this.interventions |= Intervention.SOFT_START;
    this.safety.apply(desired, this.prev, out);
    if (s.limitClamps !== limit) this.interventions |= Intervention.LIMIT;
    if (s.deltaClamps !== delta) this.interventions |= Intervention.DELTA;
    if (s.nonFinite !== nonFinite) this.interventions |= Intervention.NON_FINITE;
  }

  /** One tick record into the tick ring, for every consumer. */
  private record(k: number, now: number): void {
    const rec = this.rec;
    const c = this.shared.counters;
    rec.tick = k;
    rec.timeMs = now;
    rec.mode = this.mode;
    rec.interventions = this.interventions;
    rec.generation = this.executor.queuedGeneration;
    rec.faults = c.get('faults');
    rec.busErrors = c.get('busFailedReads') + c.get('busRetries');
    rec.q.set(this.q);
    rec.dq.set(this.dq);
    rec.effort.set(this.effort);
    rec.command.set(this.cmd);
    this.shared.ticks.push(rec);
  }

  startPolicy(): void {
    if (this.mode !== Mode.HOLD) return;
    this.executor.reset();
    this.primingTicks = 0;
    this.mode = Mode.POLICY;
    this.shared.words.store('mode', this.mode);
  }

  stopPolicy(): void {
    if (this.mode !== Mode.POLICY) return;
    this.enterHold(Mode.HOLD);
  }

  /** E-stop: stop where the arm is now (or torque off), latched until reset(). */
  estop(): void {
    this.shared.counters.add('estops');
    this.enterHold(Mode.ESTOP);
  }

  /**
   * Clears e-stop or a fault: back to hold at the measured pose; a policy must be started again.
   * A lost bus must have been reopened first (the worker does that): its fresh read is the pose.
   */
  reset(): boolean {
    if (this.mode !== Mode.ESTOP && this.mode !== Mode.FAULT) return false;
    for (let b = 0; b < this.buses.length; b++) {
      const bus = this.buses[b]!;
      bus.reset();
      if (bus.lost === null) this.away[b] = 0;
    }
    this.torqueIsOff = false;
    // The pose as the buses have it now: a reopened bus's servos may have moved while it was gone.
    for (let j = 0; j < this.n; j++) this.measure(j);
    this.enterHold(Mode.HOLD);
    return true;
  }

  /** Shutdown's first step: motors to their safe state. */
  makeSafe(): void {
    this.enterHold(this.mode === Mode.FAULT ? Mode.FAULT : Mode.ESTOP);
  }

  /**
   * While holding: moves the held pose of the jogged joint toward its target by at most its
   * speed per tick, until the jog's deadline passes (the client stopped confirming: the joint
   * stays where the pose had got to). The safety filter still applies limits and velocity.
   */
  private jog(now: number): void {
    const slot = this.shared.jog;
    if (slot.version !== this.jogVersion && slot.read(this.jogIn) > 0) {
      this.jogVersion = slot.version;
      const j = this.jogIn[JOG.joint]!;
      this.jogJoint = Number.isInteger(j) && j >= 0 && j < this.n ? j : -1;
      this.jogTarget = this.jogIn[JOG.target]!;
      this.jogStep = Math.abs(this.jogIn[JOG.speed]!) / this.cfg.rateHz;
      this.jogDeadline = this.jogIn[JOG.deadlineMs]!;
    }
    const j = this.jogJoint;
    if (j < 0) return;
    if (!(now <= this.jogDeadline) || !Number.isFinite(this.jogTarget)) {
      this.jogJoint = -1;
      return;
    }
    const h = this.hold[j]!;
    const d = this.jogTarget - h;
    this.hold[j] = Math.abs(d) <= this.jogStep ? this.jogTarget : h + (d > 0 ? this.jogStep : -this.jogStep);
  }

  private enterHold(mode: number): void {
    // Any change of mode ends a jog, and one asked before it is not taken up after.
    this.jogJoint = -1;
    this.jogVersion = this.shared.jog.version;
    this.executor.reset();
    // Hold where the joints are, not where the last command pointed: that is what stops motion.
    this.hold.set(this.q);
    this.prev.set(this.q);
    this.mode = mode;
    this.shared.words.store('mode', mode);
    if (mode === Mode.ESTOP || mode === Mode.FAULT) {
      if (this.cfg.estop === 'torque_off') {
        for (const b of this.buses) b.disable();
        this.torqueIsOff = true;
      } else {
        // CAN actuators go limp on a stop unless their bus is set to hold.
        for (const b of this.buses) if (b.disableOnStop) b.disable();
      }
    }
  }

  private fault(reason: string): void {
    if (this.mode === Mode.FAULT) return;
    this.shared.counters.add('faults');
    this.shared.words.add('faultSeq');
    this.enterHold(Mode.FAULT);
    this.events.fault(reason);
  }

  private readBuses(): boolean {
    let ok = true;
    const outcome = this.readOutcome;
    for (let b = 0; b < this.buses.length; b++) {
      const bus = this.buses[b]!;
      outcome[b] = 2;
      if (this.away[b] === 1 && bus.lost !== null) {
        // Gone until a reset takes it back: its joints keep their last values, the loop holds.
        // Once reopened it is read again (fresh pose, and its servos' bus watchdog fed) but not
        // written until the reset adopts that pose.
        ok = false;
        this.shared.perBus[b]!.add('failedReads');
        continue;
      }
      try {
        outcome[b] = bus.read() ? 0 : 1;
        if (outcome[b] === 1) ok = false;
      } catch (err) {
        ok = false;
        this.busFailed(b, err);
      }
      if (outcome[b] !== 0) this.shared.perBus[b]!.add('failedReads');
    }
    for (let j = 0; j < this.n; j++) {
      const r = this.refs[j]!;
      const bus = this.buses[r.bus]!;
      // A failed read is the motor's when the bus says it alone did not answer; a bus not read
      // at all (lost, or past its error budget) fails every joint on it.
      const o = outcome[r.bus]!;
      if (o === 2 || (o === 1 && bus.fresh[r.motor] === 0)) this.shared.perJoint[j]!.add('failedReads');
      this.measure(j);
      this.motorRec.temperature[j] = bus.temperature[r.motor]!;
      this.motorRec.voltage[j] = bus.voltage[r.motor]!;
      const hw = bus.hardwareError[r.motor]!;
      this.motorRec.hardwareError[j] = hw;
      // A standing error faults the loop again after every reset; one that appears while the
      // loop already holds in fault (a second servo overloads) is reported once, not lost.
      if (hw !== 0 && (this.mode !== Mode.FAULT || hw !== this.hwReported[j])) {
        const reason = `joint ${this.cfg.joints[j]!.name} (bus ${bus.name}, motor ${bus.ids[r.motor]}): ${bus.errorText(r.motor)}`;
        if (this.mode === Mode.FAULT) this.events.fault(reason, true);
        else this.fault(reason);
      }
      this.hwReported[j] = hw;
    }
    this.shared.motors.write(this.motorRec.data);
    return ok;
  }

  /** Joint j's position, velocity and effort from its motor's last read. */
  private measure(j: number): void {
    const r = this.refs[j]!;
    const bus = this.buses[r.bus]!;
    this.q[j] = r.direction * bus.position[r.motor]! + r.offset;
    this.dq[j] = r.direction * bus.velocity[r.motor]!;
    this.effort[j] = r.direction * bus.current[r.motor]!;
  }

  private publish(k: number, now: number): void {
    const o = this.obs;
    o.tick = k;
    o.timeMs = now;
    o.mode = this.mode;
    o.q.set(this.q);
    o.dq.set(this.dq);
    o.effort.set(this.effort);
    // Real-time chunking: what the policy must continue from, counted in actions, not ms.
    const rtc = this.mode === Mode.POLICY && this.cfg.chunk.blend === 'rtc';
    o.prefixLen = rtc ? this.executor.prefix(k, o.prefix) : 0;
    o.delay = rtc ? this.executor.delayTicks : 0;
    this.shared.observation.write(o.data);
  }

  private takeChunk(k: number): void {
    const slot = this.shared.chunk;
    if (slot.version === this.chunkVersion) return;
    const c = this.chunk;
    const v = slot.read(c.data);
    if (v <= 0) return;
    this.chunkVersion = v;
    const horizon = c.horizon;
    if (!(horizon > 0 && horizon <= MAX_HORIZON)) {
      this.executor.stats.rejectedChunks++;
      return;
    }
    this.executor.ingest(k, c.obsTick, c.actions, horizon, c.generation, c.delay);
  }

  private writeBuses(): void {
    for (let j = 0; j < this.n; j++) {
      const r = this.refs[j]!;
      this.motorCmd[r.bus]![r.motor] = (this.cmd[j]! - r.offset) * r.direction;
    }
    for (let b = 0; b < this.buses.length; b++) {
      if (this.away[b] === 1) continue;
      try {
        this.buses[b]!.write(this.motorCmd[b]!);
      } catch (err) {
        this.busFailed(b, err);
      }
    }
  }

  /** A read or write threw: a fault; a bus whose port went away is also left alone from now on. */
  private busFailed(b: number, err: unknown): void {
    const bus = this.buses[b]!;
    if (bus.lost !== null && this.away[b] === 0) {
      this.away[b] = 1;
      this.events.lost(bus.name, bus.lost);
    }
    this.fault(err instanceof Error ? err.message : String(err));
  }

  private account(k: number): void {
    const c = this.shared.counters;
    const s = this.safety.stats;
    const e = this.executor.stats;
    c.set('limitClamps', s.limitClamps);
    c.set('deltaClamps', s.deltaClamps);
    c.set('nonFinite', s.nonFinite);
    c.set('softStarts', s.softStarts);
    c.set('chunks', e.chunks);
    c.set('chunksRejected', e.rejectedChunks);
    c.set('staleActions', e.staleActions);
    c.set('refillRequests', e.refillRequests);
    const by = this.safety.byJoint;
    for (let j = 0; j < this.n; j++) {
      const pj = this.shared.perJoint[j]!;
      pj.set('limitClamps', by.limitClamps[j]!);
      pj.set('deltaClamps', by.deltaClamps[j]!);
      pj.set('nonFinite', by.nonFinite[j]!);
    }
    let retries = 0;
    let load = 0;
    for (let b = 0; b < this.buses.length; b++) {
      const bus = this.buses[b]!;
      const pb = this.shared.perBus[b]!;
      const r = bus.errors.retries;
      // Counted from the driver's own count; a reopened bus counts from 0 again.
      const seen = this.retriesSeen[b]!;
      if (r !== seen) pb.add('retries', r > seen ? r - seen : r);
      this.retriesSeen[b] = r;
      retries += pb.get('retries');
      const l = bus.load;
      if (l === null) continue;
      if (l.pct > load) load = l.pct;
      // At most one report a second per bus: a marginal bus can flap between states every tick.
      if (l.controller !== this.controllerSeen[b] && k - this.controllerSeenAt[b]! >= this.cfg.rateHz) {
        this.events.warning(`CAN bus ${bus.name}: controller ${this.controllerSeen[b]} -> ${l.controller}`);
        this.controllerSeen[b] = l.controller;
        this.controllerSeenAt[b] = k;
      }
      if (l.pct > l.warnPct && this.loadWarned[b] === 0) {
        this.loadWarned[b] = 1;
        this.events.warning(`CAN bus ${bus.name}: frames take ${l.pct.toFixed(1)}% of the bitrate (${Math.round(l.framesPerS)} frames/s; warning bound ${l.warnPct}%)`);
      } else if (l.pct < l.warnPct * 0.9) this.loadWarned[b] = 0;
    }
    c.set('busRetries', retries);
    c.set('busLoadPct', load);
  }
}
