// A real Linux kernel with SocketCAN for the CAN tests, where this machine's kernel has none:
// QEMU (software emulation) boots Debian's own kernel (unpacked by the bootstrap into
// .cache/can-vm, never installed) with a busybox initramfs that loads can, can-raw, can-dev
// and vcan, brings up vcan0, mounts this machine's root read-only over 9p and runs one
// command there, chrooted: the host's node, node_modules and dist/ against the guest's kernel.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { REPO as ROOT } from '../../tools/testkit/paths.js';

export const VM_DIR = join(ROOT, '.cache', 'can-vm');
const WANTED = ['virtio_pci', '9pnet_virtio', '9p', 'can_raw', 'can_dev', 'vcan'];

/** The modules, with what each needs first, in an order insmod can take them. */
function moduleOrder(modRoot: string): string[] {
  const byName = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.ko')) byName.set(e.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(modRoot);
  const deps = (p: string): string[] => {
    // depends= in the .modinfo section, among the module's NUL-separated strings.
    const m = /depends=([a-z0-9_,-]*)/.exec(readFileSync(p).toString('latin1'));
    return m?.[1] ? m[1].split(',').filter(Boolean).map((d) => d.replace(/-/g, '_')) : [];
  };
  const out: string[] = [];
  const visit = (name: string) => {
    const p = byName.get(name);
    if (p === undefined) throw new Error(`kernel module ${name} not in ${modRoot}`);
    if (out.includes(p)) return;
    for (const d of deps(p)) visit(d);
    out.push(p);
  };
  for (const w of WANTED) visit(w);
  return out;
}

/** Why the VM cannot run here, or null when it can. */
export function canVmUnavailable(): string | null {
  if (process.arch !== 'x64') return `the CAN VM is set up for x86-64 hosts (this is ${process.arch})`;
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) return 'qemu-system-x86_64 is not installed (npm test installs qemu-system-x86)';
  if (kernel() === null) return `no kernel unpacked in ${VM_DIR} (the bootstrap downloads linux-image-amd64)`;
  return null;
}

function kernel(): { vmlinuz: string; modules: string } | null {
  const boot = join(VM_DIR, 'root', 'boot');
  if (!existsSync(boot)) return null;
  const v = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
  if (v === undefined) return null;
  return { vmlinuz: join(boot, v), modules: join(VM_DIR, 'root', 'lib', 'modules', v.slice('vmlinuz-'.length)) };
}

const INIT = `#!/bin/busybox sh
export PATH=/bin
busybox mkdir -p /proc /sys /dev /mnt
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
busybox mount -t devtmpfs dev /dev
for m in $(busybox cat /modules); do busybox insmod /lib/modules/$m || echo "reflex-vm: insmod $m failed"; done
busybox ip link add dev vcan0 type vcan && busybox ip link set vcan0 up || echo "reflex-vm: no vcan0"
busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /mnt || echo "reflex-vm: 9p mount failed"
busybox mount -t proc proc /mnt/proc
busybox mount -t sysfs sys /mnt/sys
busybox mount -t devtmpfs dev /mnt/dev
busybox mount -t tmpfs tmp /mnt/run
cmd=$(busybox sed -n 's/.*reflex.cmd=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
busybox chroot /mnt /bin/sh "$cmd"
echo "REFLEX-VM-EXIT $?"
busybox poweroff -f
`;

function initramfs(): string {
  const k = kernel()!;
  // Keyed by the kernel and the init script, so a changed script never boots a stale image.
  const key = createHash('sha256').update(INIT).update(WANTED.join(',')).digest('hex').slice(0, 12);
  const out = join(VM_DIR, `initrd-${basename(k.modules)}-${key}.cpio`);
  if (existsSync(out)) return out;
  const dir = mkdtempSync(join(tmpdir(), 'reflex-initrd-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'lib', 'modules'), { recursive: true });
    copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'));
    const mods = moduleOrder(k.modules);
    mods.forEach((p) => copyFileSync(p, join(dir, 'lib', 'modules', basename(p))));
    writeFileSync(join(dir, 'modules'), mods.map((p) => basename(p)).join('\n') + '\n');
    writeFileSync(join(dir, 'init'), INIT);
    chmodSync(join(dir, 'init'), 0o755);
    const tmp = `${out}.${process.pid}.tmp`;
    const r = spawnSync('sh', ['-c', `cd '${dir}' && find . | busybox cpio -o -H newc > '${tmp}' && mv '${tmp}' '${out}'`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the initramfs: ${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

export interface VmRun {
  code: number | null;
  output: string;
}

/** Boots the VM, runs `script` (sh, in this checkout, as root, vcan0 up) and returns its output and exit code. */
export async function runInCanVm(script: string, timeoutMs: number): Promise<VmRun> {
  const k = kernel();
  if (k === null) throw new Error('no kernel for the CAN VM');
  const initrd = initramfs();
  const tmp = mkdtempSync(join(tmpdir(), 'reflex-vm-'));
  const cmd = join(tmp, 'cmd.sh');
  writeFileSync(cmd, `cd ${ROOT}\n${script}\n`);
  const args = [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', '2', '-m', '1536',
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
    '-kernel', k.vmlinuz, '-initrd', initrd,
    '-append', `console=ttyS0 quiet loglevel=3 panic=-1 reflex.cmd=${cmd}`,
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
  ];
  try {
    return await new Promise<VmRun>((resolve, reject) => {
      const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      // Decoded once at the end: a chunk boundary can split a multi-byte character.
      const chunks: Buffer[] = [];
      q.stdout.on('data', (d: Buffer) => chunks.push(d));
      q.stderr.on('data', (d: Buffer) => chunks.push(d));
      const timer = setTimeout(() => q.kill('SIGKILL'), timeoutMs);
      q.on('error', reject);
      q.on('exit', () => {
        clearTimeout(timer);
        const output = Buffer.concat(chunks).toString('utf8');
        const m = /REFLEX-VM-EXIT (\d+)/.exec(output);
        resolve({ code: m ? Number(m[1]) : null, output });
      });
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
