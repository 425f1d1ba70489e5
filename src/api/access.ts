// Who may do what on the control socket, decided by the peer's credentials as the kernel
// recorded them at connect (SO_PEERCRED), never by anything the client says. Anyone who can
// connect (the socket's mode and group decide that) may read and may stop the robot; commands
// that can set it in motion (the catalog's `moves`) and fault injection need root, the daemon's
// own user, or a member of the operator group (config control.operatorGroup).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { CommandSpec } from './command.js';

/**
 * The rt room (the native addon's facade), loaded by the first connection the daemon checks:
 * every `reflex` client imports this room for `request` and should not pay for the addon's.
 */
function peerCred(fd: number): ReturnType<typeof import('../rt/index.js').peerCred> {
  return (createRequire(import.meta.url)('../rt/index.js') as typeof import('../rt/index.js')).peerCred(fd);
}

/** The process at the other end of a control-socket connection. */
export interface Peer {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS), else the user's from /etc/group. */
  groups: number[];
  /** The user's name, or `uid N` when /etc/passwd has none. */
  user: string;
}

/** Where a command came from: a local connection (its peer, null when unknown) or the fleet link. */
export type Origin = { via: 'socket'; peer: Peer | null } | { via: 'fleet'; from: string } | { via: 'internal' };

export const INTERNAL: Origin = { via: 'internal' };

/** Commands that only stop or hold the robot: anyone who can connect must be able to send them. */
const STOPS: ReadonlySet<string> = new Set(['estop', 'policy.stop', 'jog.stop']);

function lines(file: string): string[] {
  try {
    // Small system files; a huge one is not read past 1 MiB.
    return readFileSync(file, 'utf8').slice(0, 1 << 20).split('\n');
  } catch {
    return [];
  }
}

export function userName(uid: number, passwd = '/etc/passwd'): string {
  for (const l of lines(passwd)) {
    const [name, , id] = l.split(':');
    if (name && id === String(uid)) return name;
  }
  return `uid ${uid}`;
}

function groupsOf(user: string, group = '/etc/group'): number[] {
  const out: number[] = [];
  for (const l of lines(group)) {
    const [, , gid, members] = l.split(':');
    if (gid !== undefined && members !== undefined && members.split(',').includes(user)) out.push(Number(gid));
  }
  return out;
}

/** The peer of a Unix-socket connection; null without the native addon. */
export function peerOf(sock: Socket): Peer | null {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  const c = peerCred(fd);
  if (c === null) return null;
  const user = userName(c.uid);
  return { pid: c.pid, uid: c.uid, gid: c.gid, user, groups: c.groups ?? groupsOf(user) };
}

export interface AccessOptions {
  /** The operator group's gid; null: only root and the daemon's own user may move the robot. */
  operatorGid: number | null;
  /** Its name, for the refusal's message. */
  operatorGroup: string | null;
  /** The daemon's own uid. */
  ownUid: number;
}

/** Whether the command needs an operator. */
export function needsOperator(name: string, spec: CommandSpec): boolean {
  return !STOPS.has(name) && (spec.moves || spec.debug === true);
}

/** Whether the command changes the robot's state (it is logged with who sent it). */
export function changesState(spec: CommandSpec): boolean {
  return spec.readOnly !== true;
}

/** Null when `peer` may run `name`; else why not, in words a technician can act on. */
export function refusal(name: string, spec: CommandSpec, peer: Peer | null, opts: AccessOptions): string | null {
  if (!needsOperator(name, spec)) return null;
  if (peer === null) return `${name} needs an operator, and who is connected cannot be told (the native addon is not loaded)`;
  if (peer.uid === 0 || peer.uid === opts.ownUid) return null;
  const gid = opts.operatorGid;
  if (gid !== null && (peer.gid === gid || peer.groups.includes(gid))) return null;
  const group = opts.operatorGroup;
  const how = group === null || gid === null ? 'no operator group is configured (control.operatorGroup): run it as root' : `add them to it (\`usermod -aG ${group} ${peer.user}\`, then log in again) or run it with sudo`;
  return `${peer.user} (uid ${peer.uid}) may not ${name}: it can move the robot and needs the operator group${group === null ? '' : ` "${group}"`}; ${how}`;
}
