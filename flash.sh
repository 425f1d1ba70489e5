#!/usr/bin/env bash
# flash.sh: put reflex on a robot. Idempotent: each step looks before it changes anything.
#
#   flash.sh [OPTIONS] release [--arch arm64|x64] [--version V] OUT_DIR
#       Build the release directory OUT_DIR/reflex-<version>-linux-<arch>/ from this checkout
#       (run `npm run build` first): dist/src, bin/, package.json, production node_modules,
#       native/ (sources, and the addon when built for <arch>), the tracked default policies
#       under models/, config/example.yaml, systemd/, flash/ (this script and the first-boot
#       step), RELEASE, MANIFEST.
#   flash.sh [OPTIONS] rootfs L4T_DIR [--release DIR] [--arch arm64|x64]
#       Install into a root filesystem before flashing (without --release, build one first).
#   flash.sh [OPTIONS] ssh [USER@]HOST [--port P] [--identity FILE] [-o SSH_OPTION]
#                      [--release DIR] [--arch arm64|x64] [--wait S]
#       Install on a running robot over one ssh connection: preflight (aarch64, the JetPack
#       release, systemd, free disk), send the release and the pinned Node as a tar stream,
#       install them as `rootfs` does into /, reload systemd and udev, restart reflex and wait
#       for READY (--wait S, default 120); an upgrade that does not come up is rolled back.
#       Without --arch the robot must be a Jetson (aarch64); --arch x64 allows an x86_64 host.
#   flash.sh [OPTIONS] ssh [USER@]HOST [...] rollback
#       Point /opt/reflex/current at the previous release (by install time), restart, wait.
#   On the robot itself, as root (what `ssh` runs there; /opt/reflex/current/flash/flash.sh):
#   flash.sh [OPTIONS] install --release DIR --node-tgz NODE_TGZ | --node-stamp STAMP
#   flash.sh [OPTIONS] rollback
#   flash.sh preflight     (what the robot is, as key=value lines)
#
# OPTIONS: --dry-run  print what would change, change nothing
#          --check    change nothing; exit 1 when changes are pending, 0 when up to date
#          --force    overwrite /etc/reflex/reflex.yaml with config/example.yaml
#          --keep N   previous releases kept beside the current one (default 3)
# Exit status: 0 done (or up to date), 1 changes pending (--check), 2 usage or failure
# (over ssh: the robot's own status; a lost connection is 2).
set -euo pipefail

# ${BASH_SOURCE[0]} is empty when bash reads this script from ssh's stdin (preflight).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
SELF=$ROOT/$(basename "${BASH_SOURCE[0]:-$0}")
MODE=apply
FORCE=0
KEEP=3
PENDING=0
ARCH=arm64
ARCH_GIVEN=0
VERSION=
RELEASE_DIR=
TMPS=()
DONE=0
WAIT=120
NODE_TGZ=
NODE_STAMP=
PORT=
IDENTITY=
SSH_OPTS=()
SSH=()
SSH_DIR=

# On the robot a lost ssh connection must not stop an install half way (SIGPIPE is ignored
# there): a message that cannot be written is dropped.
die() { echo "flash.sh: $*" >&2 || true; exit 2; }
say() { echo "flash.sh: $*" >&2 || true; }
# Any failure exits 2, so that --check's 1 always means "changes pending".
cleanup() {
  local rc=$?
  if [ -n "$SSH_DIR" ] && [ -S "$SSH_DIR/master" ]; then "${SSH[@]}" -O exit "$HOST" 2>/dev/null || true; fi
  if [ ${#TMPS[@]} -gt 0 ]; then rm -rf "${TMPS[@]}"; fi
  if [ "$rc" -ne 0 ] && [ "$DONE" -eq 0 ]; then exit 2; fi
}
trap cleanup EXIT
# Interrupted here: still clean up (and close the ssh connection). On the robot these are
# ignored already when ssh's connection is lost (see ship_and_run), and stay ignored.
trap 'exit 2' INT TERM HUP

# One pending change: say it, count it; returns 0 when the caller should make it.
change() {
  PENDING=$((PENDING + 1))
  case $MODE in
    apply) say "$*"; return 0 ;;
    *) echo "would: $*" || true; return 1 ;;
  esac
}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$SELF"; exit "${1:-2}"; }

# --- small idempotent steps (paths are absolute) ----------------------------------------------

# ensure_file SRC DST MODE: DST has SRC's content and the mode; replaced by rename.
ensure_file() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "$mode" ]; then
    return 0
  fi
  change "install ${dst#"$TARGET"}" || return 0
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst.flash-tmp"
  chmod "$mode" "$dst.flash-tmp"
  mv -f "$dst.flash-tmp" "$dst"
}

# ensure_link TARGET LINK: LINK is a symlink to TARGET, swapped atomically (ln -sfn + mv -T).
ensure_link() {
  local to=$1 link=$2
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$to" ]; then return 0; fi
  change "link ${link#"$TARGET"} -> $to" || return 0
  mkdir -p "$(dirname "$link")"
  ln -sfn "$to" "$link.flash-tmp"
  mv -T "$link.flash-tmp" "$link"
}

# ensure_line FILE REGEX LINE WHY: append LINE when no line matches REGEX.
ensure_line() {
  local file=$1 re=$2 line=$3 why=$4
  if [ -f "$file" ] && grep -Eq "$re" "$file"; then return 0; fi
  change "$why (${file#"$TARGET"})" || return 0
  mkdir -p "$(dirname "$file")"
  printf '%s\n' "$line" >>"$file"
}

# ensure_member FILE GROUP USER: USER is in GROUP's member list (4th field of group/gshadow).
ensure_member() {
  local file=$1 group=$2 user=$3
  local line members
  line=$(grep -E "^$group:" "$file" | head -n1) || return 0
  members=$(printf '%s' "$line" | cut -d: -f4)
  case ",$members," in *",$user,"*) return 0 ;; esac
  change "add $user to group $group (${file#"$TARGET"})" || return 0
  local new
  if [ -n "$members" ]; then new="$line,$user"; else new="$line$user"; fi
  awk -v g="$group" -v n="$new" -F: 'BEGIN { done = 0 } $1 == g && !done { print n; done = 1; next } { print }' \
    "$file" >"$file.flash-tmp"
  chmod --reference="$file" "$file.flash-tmp"
  mv -f "$file.flash-tmp" "$file"
}

# --- release --------------------------------------------------------------------------------

node_pin() { node -p 'require(process.argv[1]).reflex.node' "$ROOT/package.json"; }

release_version() {
  if [ -n "$VERSION" ]; then echo "$VERSION"; return; fi
  local v hash dirty=
  v=$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")
  hash=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)
  if [ -n "$(git -C "$ROOT" status --porcelain -- src bin native package.json package-lock.json 2>/dev/null)" ]; then dirty=.dirty; fi
  echo "$v+g$hash$dirty"
}

# The production dependencies, top-level folders of node_modules (nested ones come with them).
prod_modules() {
  (cd "$ROOT" && { npm ls --omit=dev --all --parseable 2>/dev/null || true; }) |
    sed -n "s|^$ROOT/node_modules/||p" | grep -v '/node_modules/' | sort -u
}

# cross_native DIR: cross-compile reflex's native addon for $ARCH in DIR/native (Debian's
# g++-aarch64-linux-gnu), against the pinned Node's headers for $ARCH; 1 without a compiler.
cross_native() {
  local s=$1 nodedir
  command -v "${CROSS}g++" >/dev/null || return 1
  nodedir=$(fetch_node "$ARCH" "$(node_pin)") || return 1
  say "cross-compiling the native addon for linux-$ARCH with ${CROSS}g++"
  (cd "$s/native" && CC=${CROSS}gcc CXX=${CROSS}g++ LINK=${CROSS}g++ AR=${CROSS}ar \
    node "$ROOT/node_modules/node-gyp/bin/node-gyp.js" rebuild --arch="$ARCH" --nodedir="$nodedir" >&2)
  find "$s/native/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$s/native/build/Release" -mindepth 1 -maxdepth 1 ! -name reflex_native.node -exec rm -rf {} +
  [ -f "$s/native/build/Release/reflex_native.node" ]
}

# stage_release DIR: assemble the release for $ARCH in DIR.
stage_release() {
  local s=$1 version=$2 native=missing opencv=build-on-device node_arch
  [ -f "$ROOT/dist/src/cli/main.js" ] || die "no dist/src: run npm run build first"
  mkdir -p "$s/dist" "$s/native/build/Release" "$s/models" "$s/config" "$s/node_modules" "$s/flash"
  cp -a "$ROOT/bin" "$s/bin"
  cp -a "$ROOT/dist/src" "$s/dist/src"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/README.md" "$s/"
  cp -a "$ROOT/native/binding.gyp" "$ROOT/native/src" "$s/native/"
  [ ! -d "$ROOT/native/onnxruntime" ] || cp -a "$ROOT/native/onnxruntime" "$s/native/"
  cp "$ROOT/config/example.yaml" "$s/config/"
  if [ -d "$ROOT/systemd" ]; then cp -a "$ROOT/systemd" "$s/systemd"; fi
  cp -a "$ROOT/scripts/flash/." "$s/flash/"
  # flash.sh itself, so that the robot can roll its agent back on its own (flash.sh rollback).
  cp "$SELF" "$s/flash/flash.sh"
  (cd "$ROOT" && git ls-files -z -- models | xargs -0 -r cp --parents -t "$s")
  case $ARCH in x64) node_arch=x64 ;; arm64) node_arch=arm64 ;; esac
  # Other platforms' prebuilt binaries and OpenCV's intermediate objects are not copied at all.
  local other=arm64
  if [ "$node_arch" = arm64 ]; then other=x64; fi
  prod_modules >"$s.modules"
  TMPS+=("$s.modules")
  tar -C "$ROOT/node_modules" -cf - \
    --exclude=onnxruntime-node/bin/napi-v6/win32 --exclude=onnxruntime-node/bin/napi-v6/darwin \
    --exclude="onnxruntime-node/bin/napi-v6/linux/$other" --exclude=@u4/opencv4nodejs/build/Release/obj.target \
    -T "$s.modules" | tar -C "$s/node_modules" -xf -
  local dep
  for dep in $(node -p 'Object.keys(require(process.argv[1]).dependencies).join(" ")' "$ROOT/package.json"); do
    [ -f "$s/node_modules/$dep/package.json" ] || die "dependency $dep is not in node_modules: run npm ci first"
  done

  # Native parts: keep only what runs on $ARCH.
  local ort=$s/node_modules/onnxruntime-node/bin/napi-v6
  if [ -d "$ort" ]; then
    find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
    find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$node_arch" -exec rm -rf {} +
  fi
  local pre=$s/node_modules/@serialport/bindings-cpp/prebuilds
  if [ -d "$pre" ]; then find "$pre" -mindepth 1 -maxdepth 1 ! -name "linux-$node_arch" -exec rm -rf {} +; fi
  local cv=$s/node_modules/@u4/opencv4nodejs/build
  if [ "$ARCH" = "$HOST_ARCH" ] && [ -f "$cv/Release/opencv4nodejs.node" ]; then
    # Built here against this machine's OpenCV: right for a machine like this one (tests);
    # a Jetson rebuilds it at first boot when the library does not load there.
    find "$cv" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find "$cv/Release" -mindepth 1 -maxdepth 1 ! -name opencv4nodejs.node -exec rm -rf {} +
    opencv=built-here
  else
    rm -rf "$cv"
  fi
  if [ "$ARCH" = "$HOST_ARCH" ] && [ -f "$ROOT/native/build/Release/reflex_native.node" ]; then
    cp "$ROOT/native/build/Release/reflex_native.node" "$s/native/build/Release/"
    native=built-here
  elif cross_native "$s"; then
    native=cross-compiled
  else
    # Without a cross compiler the robot builds it at first boot (scripts/flash/reflex-firstboot.sh).
    say "warning: no native addon for linux-$ARCH in this release (no ${CROSS}g++): reflex-firstboot builds it on the robot"
  fi
  find "$s/dist" -name '*.map' -delete
  printf 'version=%s\narch=%s\nnode=%s\nnative=%s\nopencv=%s\n' \
    "$version" "$ARCH" "$(node_pin)" "$native" "$opencv" >"$s/RELEASE"
  # MANIFEST: every file's mode and sha256 and every link, so that two releases compare cheaply.
  (cd "$s" && {
    find . -type f ! -name MANIFEST -printf '%m %p\n' | sort
    find . -type f ! -name MANIFEST -print0 | sort -z | xargs -0 -r sha256sum
    find . -type l -printf '%p -> %l\n' | sort
  }) >"$s/MANIFEST.tmp"
  mv "$s/MANIFEST.tmp" "$s/MANIFEST"
}

cmd_release() {
  local out=$1 version name stage
  version=$(release_version)
  name=reflex-$version-linux-$ARCH
  stage=$(mktemp -d "${TMPDIR:-/tmp}/reflex-release.XXXXXX")
  TMPS+=("$stage")
  stage_release "$stage/$name" "$version"
  RELEASE_DIR=$out/$name
  if [ -f "$RELEASE_DIR/MANIFEST" ] && cmp -s "$stage/$name/MANIFEST" "$RELEASE_DIR/MANIFEST"; then
    return 0
  fi
  change "build release $RELEASE_DIR" || return 0
  mkdir -p "$out"
  rm -rf "$RELEASE_DIR.flash-old"
  if [ -e "$RELEASE_DIR" ]; then mv "$RELEASE_DIR" "$RELEASE_DIR.flash-old"; fi
  cp -a "$stage/$name" "$RELEASE_DIR.flash-tmp"
  mv -T "$RELEASE_DIR.flash-tmp" "$RELEASE_DIR"
  rm -rf "$RELEASE_DIR.flash-old"
}

# --- the pinned Node -------------------------------------------------------------------------

# node_tgz ARCH VERSION: the npm registry's node-linux-ARCH@VERSION package (npm pack checks its
# integrity), fetched once into .cache/node; offline once it is there. Prints the tarball.
node_tgz() {
  local arch=$1 version=$2 cache=$ROOT/.cache/node
  local tgz=$cache/node-linux-$arch-$version.tgz
  mkdir -p "$cache"
  if [ ! -f "$tgz" ]; then
    say "fetching node-linux-$arch@$version from the npm registry into .cache/node"
    (cd "$cache" && npm pack --silent "node-linux-$arch@$version" >/dev/null) ||
      die "cannot fetch node-linux-$arch@$version (offline? put its npm pack tarball in $cache)"
  fi
  echo "$tgz"
}

# fetch_node ARCH VERSION: that package unpacked beside its tarball. Prints the folder.
fetch_node() {
  local tgz dir
  tgz=$(node_tgz "$1" "$2")
  dir=${tgz%.tgz}
  if [ ! -x "$dir/package/bin/node" ]; then
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    tar -xzf "$tgz" -C "$dir.tmp"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir/package"
}

# node_stamp TGZ ARCH VERSION: what /opt/reflex/node/.flash-stamp says when TGZ is installed.
node_stamp() { echo "node-linux-$2@$3 $(sha256sum "$1" | cut -d' ' -f1)"; }

# ensure_node ARCH VERSION: <root>/opt/reflex/node holds bin/node, the headers (the first boot
# builds addons against them) and LICENSE of the package NODE_STAMP names (from NODE_TGZ, which
# only has to be there when it is not installed yet: over ssh it is sent only then).
ensure_node() {
  local arch=$1 version=$2 dst=$TARGET/opt/reflex/node
  if [ -x "$dst/bin/node" ] && [ -f "$dst/.flash-stamp" ] && [ "$(cat "$dst/.flash-stamp")" = "$NODE_STAMP" ]; then
    return 0
  fi
  change "install Node $version (linux-$arch) in /opt/reflex/node" || return 0
  [ -f "$NODE_TGZ" ] || die "Node $version is not installed and no --node-tgz was given"
  [ "$(node_stamp "$NODE_TGZ" "$arch" "$version")" = "$NODE_STAMP" ] || die "$NODE_TGZ is not $NODE_STAMP"
  local tmp=$dst.flash-tmp pkg=$dst.flash-pkg
  rm -rf "$tmp" "$pkg"
  mkdir -p "$tmp/bin" "$tmp/include" "$pkg"
  tar --no-same-owner -xzf "$NODE_TGZ" -C "$pkg"
  cp -a "$pkg/package/bin/node" "$tmp/bin/node"
  cp -a "$pkg/package/include/node" "$tmp/include/node"
  # OpenSSL's per-platform headers: only this architecture's (64 MiB less).
  local ossl=linux-aarch64
  if [ "$arch" = x64 ]; then ossl=linux-x86_64; fi
  find "$tmp/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name "$ossl" -exec rm -rf {} +
  cp "$pkg/package/LICENSE" "$tmp/"
  rm -rf "$pkg"
  printf '%s\n' "$NODE_STAMP" >"$tmp/.flash-stamp"
  rm -rf "$dst.flash-old"
  if [ -e "$dst" ]; then mv "$dst" "$dst.flash-old"; fi
  mv -T "$tmp" "$dst"
  rm -rf "$dst.flash-old"
}

# --- rootfs ----------------------------------------------------------------------------------

release_field() { sed -n "s/^$2=//p" "$1/RELEASE"; }

ensure_release() {
  local rel=$1 version=$2 dir=$TARGET/opt/reflex/releases/$2
  if [ -f "$dir/MANIFEST" ] && cmp -s "$rel/MANIFEST" "$dir/MANIFEST"; then return 0; fi
  change "install release $version in /opt/reflex/releases/$version" || return 0
  mkdir -p "$TARGET/opt/reflex/releases"
  rm -rf "$dir.flash-tmp" "$dir.flash-old"
  cp -a "$rel" "$dir.flash-tmp"
  touch "$dir.flash-tmp"
  if [ -e "$dir" ]; then mv "$dir" "$dir.flash-old"; fi
  mv -T "$dir.flash-tmp" "$dir"
  rm -rf "$dir.flash-old"
}

# Keep the current release and the KEEP newest others (by install time); remove the rest.
prune_releases() {
  local current=$1 dir=$TARGET/opt/reflex/releases n=0 r
  [ -d "$dir" ] || return 0
  while IFS= read -r r; do
    [ "$r" = "$current" ] && continue
    case $r in *.flash-tmp | *.flash-old) ;; *) n=$((n + 1)); [ $n -le "$KEEP" ] && continue ;; esac
    change "remove old release /opt/reflex/releases/$r" || continue
    rm -rf "${dir:?}/$r"
  done < <(cd "$dir" && ls -1t)
}

# The reflex system user and group, in the groups that own serial ports, cameras and the GPU.
ensure_user() {
  local etc=$TARGET/etc id g
  if [ ! -f "$etc/passwd" ] || [ ! -f "$etc/group" ]; then
    die "$TARGET has no etc/passwd or etc/group: not a root filesystem"
  fi
  if grep -q '^reflex:' "$etc/passwd"; then
    id=$(grep '^reflex:' "$etc/passwd" | cut -d: -f3)
  else
    # Like useradd --system: the highest id under 1000 free as both a uid and a gid.
    id=999
    while cut -d: -f3 "$etc/passwd" | grep -qx "$id" || cut -d: -f3 "$etc/group" | grep -qx "$id"; do
      id=$((id - 1))
      [ "$id" -ge 100 ] || die "no free system id in $etc/passwd"
    done
  fi
  local gid=$id
  if grep -q '^reflex:' "$etc/group"; then gid=$(grep '^reflex:' "$etc/group" | cut -d: -f3); fi
  ensure_line "$etc/group" '^reflex:' "reflex:x:$gid:" "create group reflex"
  ensure_line "$etc/passwd" '^reflex:' "reflex:x:$id:$gid:reflex robot runtime:/var/lib/reflex:/usr/sbin/nologin" "create user reflex"
  if [ -f "$etc/shadow" ]; then ensure_line "$etc/shadow" '^reflex:' 'reflex:!*:::::::' "lock user reflex's password"; fi
  if [ -f "$etc/gshadow" ]; then ensure_line "$etc/gshadow" '^reflex:' 'reflex:!*::' "create group reflex"; fi
  for g in dialout video render; do
    if ! grep -q "^$g:" "$etc/group"; then
      # render is missing on older L4T releases: create it as a system group.
      local gg=998
      while cut -d: -f3 "$etc/group" | grep -qx "$gg"; do gg=$((gg - 1)); done
      ensure_line "$etc/group" "^$g:" "$g:x:$gg:" "create group $g"
      if [ -f "$etc/gshadow" ]; then ensure_line "$etc/gshadow" "^$g:" "$g:!::" "create group $g"; fi
    fi
    if [ -f "$etc/group" ] && grep -q "^$g:" "$etc/group"; then ensure_member "$etc/group" "$g" reflex; fi
    if [ -f "$etc/gshadow" ] && grep -q "^$g:" "$etc/gshadow"; then ensure_member "$etc/gshadow" "$g" reflex; fi
  done
}

# unit_targets UNIT KEY: the targets named by KEY= (WantedBy, RequiredBy) in its [Install].
unit_targets() {
  awk -v k="$2" -F= '/^\[/ { inst = ($0 == "[Install]") } inst && $1 == k { print $2 }' "$1" | tr ' ' '\n' | sed '/^$/d'
}

ensure_units() {
  local rel=$1 u name t etc=$TARGET/etc
  local units=()
  if [ -d "$rel/systemd" ]; then
    while IFS= read -r u; do units+=("$u"); done < <(find "$rel/systemd" -type f \
      \( -name '*.service' -o -name '*.socket' -o -name '*.timer' -o -name '*.target' -o -name '*.path' \) | sort)
  fi
  units+=("$rel/flash/reflex-firstboot.service")
  for u in "${units[@]}"; do
    name=$(basename "$u")
    ensure_file "$u" "$etc/systemd/system/$name" 644
    # Enabled the way systemctl enable would: a link in each target's .wants/.requires.
    # Templates (name@.service) are enabled per instance (can-up@can0), not here.
    case $name in *@.*) continue ;; esac
    while IFS= read -r t; do
      ensure_link "/etc/systemd/system/$name" "$etc/systemd/system/$t.wants/$name"
    done < <(unit_targets "$u" WantedBy)
    while IFS= read -r t; do
      ensure_link "/etc/systemd/system/$name" "$etc/systemd/system/$t.requires/$name"
    done < <(unit_targets "$u" RequiredBy)
  done
  if [ -d "$rel/systemd" ]; then
    while IFS= read -r u; do
      ensure_file "$u" "$etc/udev/rules.d/$(basename "$u")" 644
    done < <(find "$rel/systemd" -type f -name '*.rules' | sort)
    while IFS= read -r u; do
      ensure_file "$u" "$etc/modules-load.d/$(basename "$u")" 644
    done < <(find "$rel/systemd" -type f -path '*modules-load*' -name '*.conf' | sort)
    # The user is also written into etc/passwd (ensure_user) so that it exists before the first
    # boot; systemd-sysusers then finds it there and changes nothing.
    while IFS= read -r u; do
      ensure_file "$u" "$TARGET/usr/lib/sysusers.d/$(basename "$u")" 644
    done < <(find "$rel/systemd" -type f -path '*sysusers*' -name '*.conf' | sort)
  fi
}

ensure_config() {
  local rel=$1 dst=$TARGET/etc/reflex/reflex.yaml
  if [ -e "$dst" ] && [ "$FORCE" -eq 0 ]; then return 0; fi
  ensure_file "$rel/config/example.yaml" "$dst" 644
}

# The technician's `reflex` command, on the pinned Node.
ensure_cli() {
  local tmp
  tmp=$(mktemp)
  TMPS+=("$tmp")
  printf '#!/bin/sh\n# Installed by flash.sh: the reflex CLI on the pinned Node.\nexec /opt/reflex/node/bin/node /opt/reflex/current/bin/reflex.js "$@"\n' >"$tmp"
  ensure_file "$tmp" "$TARGET/usr/local/bin/reflex" 755
}

cmd_rootfs() {
  local version node arch
  [ -d "$TARGET" ] || die "no such directory: $TARGET"
  TARGET=$(cd "$TARGET" && pwd)
  # Into the running system (install): paths stay /etc/..., not //etc/...
  if [ "$TARGET" = / ]; then TARGET=; fi
  if [ ! -f "$RELEASE_DIR/RELEASE" ] || [ ! -f "$RELEASE_DIR/MANIFEST" ]; then
    die "$RELEASE_DIR is not a release (no RELEASE/MANIFEST)"
  fi
  version=$(release_field "$RELEASE_DIR" version)
  node=$(release_field "$RELEASE_DIR" node)
  arch=$(release_field "$RELEASE_DIR" arch)
  if [ -z "$NODE_STAMP" ]; then
    # Here, from .cache/node (fetched once); on a robot, flash.sh ssh says which one it sends.
    [ -n "$NODE_TGZ" ] || NODE_TGZ=$(node_tgz "$arch" "$node")
    NODE_STAMP=$(node_stamp "$NODE_TGZ" "$arch" "$node")
  fi
  ensure_node "$arch" "$node"
  ensure_release "$RELEASE_DIR" "$version"
  ensure_link "releases/$version" "$TARGET/opt/reflex/current"
  prune_releases "$version"
  ensure_user
  ensure_units "$RELEASE_DIR"
  ensure_config "$RELEASE_DIR"
  ensure_cli
}

# --- on a running robot (install, rollback; run there by `ssh`) ------------------------------

unit_prop() { systemctl show -p "$2" --value "$1" 2>/dev/null || true; }

# wait_ready AFTER: until reflex runs an invocation other than AFTER (its InvocationID before
# the restart) and is active with the daemon's STATUS= line (it sends READY=1 once the loop
# ticks), at most WAIT seconds; 1 when it failed or the time ran out.
wait_ready() {
  local after=$1 end=$((SECONDS + WAIT)) state text
  say "waiting up to ${WAIT}s for reflex to report READY"
  while :; do
    state=$(unit_prop reflex.service ActiveState)
    text=$(unit_prop reflex.service StatusText)
    if [ "$state" = active ] && [ -n "$text" ] && [ "$(unit_prop reflex.service InvocationID)" != "$after" ]; then
      say "reflex is ready: $text"
      return 0
    fi
    if [ "$state" = failed ]; then say "reflex failed"; return 1; fi
    if [ "$SECONDS" -ge "$end" ]; then say "reflex is not ready after ${WAIT}s (it is $state)"; return 1; fi
    sleep 1
  done
}

# restart_reflex: restart it (start when stopped) without waiting on systemd's own start
# timeout (30 min, for a TensorRT build), then wait_ready.
restart_reflex() {
  local before
  before=$(unit_prop reflex.service InvocationID)
  systemctl reset-failed reflex.service 2>/dev/null || true
  systemctl restart --no-block reflex.service
  wait_ready "$before"
}

show_status() { systemctl status reflex.service --no-pager --lines=0 || true; }

show_journal() {
  say "the last lines of reflex's journal:"
  journalctl -u reflex.service -n 50 --no-pager >&2 || true
}

reload_systemd() {
  say "systemctl daemon-reload"
  systemctl daemon-reload
  # udev runs on a robot, not in a container.
  if [ -S /run/udev/control ]; then
    say "udevadm control --reload; udevadm trigger (serial, video, CAN)"
    udevadm control --reload
    # Adapters plugged in before the rules existed get them now (latency_timer, names, groups),
    # not only after a replug or a reboot.
    udevadm trigger --action=change --subsystem-match=tty --subsystem-match=video4linux --subsystem-match=net || true
  fi
}

# previous_release: the newest installed release (by install time) other than the current one.
previous_release() {
  local cur=$1 r
  while IFS= read -r r; do
    case $r in "$cur" | *.flash-tmp | *.flash-old) continue ;; esac
    if [ -f "$TARGET/opt/reflex/releases/$r/MANIFEST" ]; then echo "$r"; return 0; fi
  done < <(cd "$TARGET/opt/reflex/releases" && ls -1t)
  return 1
}

# roll_back_to VERSION: current -> that release, with its units; restart and wait.
roll_back_to() {
  local version=$1 rel=/opt/reflex/releases/$1
  PENDING=0
  ensure_link "releases/$version" /opt/reflex/current
  ensure_units "$rel"
  [ "$MODE" = apply ] || return 0
  reload_systemd
  restart_reflex
}

need_robot() {
  [ "$(id -u)" -eq 0 ] || die "$1 changes /opt, /etc and services: run it as root"
  [ -d /run/systemd/system ] || die "systemd is not running here (PID 1 is $(cat /proc/1/comm))"
}

cmd_install() {
  local before after arch rel_arch
  need_robot install
  [ -n "$RELEASE_DIR" ] || die "install: --release DIR is required"
  [ -n "$NODE_TGZ" ] || [ -n "$NODE_STAMP" ] || die "install: --node-tgz NODE_TGZ or --node-stamp STAMP is required"
  RELEASE_DIR=$(cd "$RELEASE_DIR" && pwd)
  rel_arch=$(release_field "$RELEASE_DIR" arch)
  arch=$HOST_ARCH
  [ "$rel_arch" = "$arch" ] || die "the release is for linux-$rel_arch, this machine is linux-$arch"
  before=$(readlink /opt/reflex/current 2>/dev/null || true)
  TARGET=/
  cmd_rootfs
  after=$(readlink /opt/reflex/current 2>/dev/null || true)
  local changed=$PENDING state
  state=$(unit_prop reflex.service ActiveState)
  if [ "$changed" -eq 0 ] && [ "$state" = active ]; then
    # Up to date and running: reflex is not restarted.
    [ "$MODE" != apply ] || show_status
    return 0
  fi
  if [ "$changed" -eq 0 ]; then change "start reflex (it is ${state:-not loaded})" || return 0; fi
  [ "$MODE" = apply ] || return 0
  reload_systemd
  if ! systemctl is-enabled --quiet reflex.service; then systemctl enable reflex.service; fi
  if [ ! -e /opt/reflex/current/.firstboot-done ]; then
    say "running the first-boot step (builds what this release must build here; minutes when it compiles)"
    if ! systemctl start reflex-firstboot.service; then
      journalctl -u reflex-firstboot.service -n 50 --no-pager >&2 || true
      die "reflex-firstboot.service failed: reflex was not restarted"
    fi
  fi
  say "restarting reflex on ${after#releases/}"
  if restart_reflex; then show_status; return 0; fi
  show_journal
  local prev=${before#releases/}
  if [ -n "$before" ] && [ "$before" != "$after" ] && [ -f "/opt/reflex/releases/$prev/MANIFEST" ]; then
    say "!!! reflex did not come up on ${after#releases/}: ROLLING BACK to $prev !!!"
    if roll_back_to "$prev"; then
      show_status
      die "the upgrade to ${after#releases/} failed; reflex runs $prev again"
    fi
    show_journal
    die "the upgrade to ${after#releases/} failed, and reflex does not come up on $prev either"
  fi
  die "reflex did not come up on ${after#releases/}"
}

cmd_rollback() {
  local cur prev
  need_robot rollback
  TARGET=
  cur=$(readlink /opt/reflex/current 2>/dev/null) || die "no /opt/reflex/current: nothing installed"
  cur=${cur#releases/}
  prev=$(previous_release "$cur") || die "no release to roll back to: /opt/reflex/releases has only $cur"
  if [ "$MODE" = apply ]; then say "!!! rolling the agent back: $cur -> $prev !!!"; fi
  if roll_back_to "$prev"; then
    [ "$MODE" != apply ] || show_status
    return 0
  fi
  show_journal
  die "reflex does not come up on $prev (current now points at it; flash.sh rollback again returns to $cur)"
}

# free_kib PATH: KiB free on the filesystem PATH is (or will be) on.
free_kib() {
  local d=$1
  while [ ! -e "$d" ]; do d=$(dirname "$d"); done
  df -Pk "$d" | awk 'NR == 2 { print $4 }'
}

# What `ssh` needs to know of the robot, as key=value lines (read-only; needs no root).
cmd_preflight() {
  local d
  echo "machine=$(uname -m)"
  echo "uid=$(id -u)"
  if [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null; then echo "sudo=yes"; fi
  echo "tegra=$(head -n1 /etc/nv_tegra_release 2>/dev/null || true)"
  echo "pid1=$(cat /proc/1/comm 2>/dev/null || true)"
  echo "systemd=$(systemctl is-system-running 2>/dev/null || true)"
  # What sd_booted() looks at: systemctl may not answer a user without D-Bus.
  if [ -d /run/systemd/system ]; then echo "booted=yes"; fi
  if command -v tar >/dev/null; then echo "tar=yes"; fi
  echo "free_opt=$(free_kib /opt/reflex)"
  echo "free_tmp=$(free_kib /var/tmp)"
  if [ -x /opt/reflex/node/bin/node ] && [ -f /opt/reflex/node/.flash-stamp ]; then
    echo "node=$(cat /opt/reflex/node/.flash-stamp)"
  fi
  echo "current=$(readlink /opt/reflex/current 2>/dev/null || true)"
  for d in /opt/reflex/releases/*/MANIFEST; do
    [ -f "$d" ] || continue
    echo "release=$(basename "$(dirname "$d")") $(sha256sum "$d" | cut -d' ' -f1)"
  done
}

# --- over ssh (run here) ---------------------------------------------------------------------

# shq WORD: WORD quoted for the remote's POSIX shell.
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# ssh_open: one connection (a ControlMaster in a private temp dir) that every later ssh reuses,
# so that a password or a host key is asked once.
ssh_open() {
  SSH_DIR=$(mktemp -d /tmp/reflex-ssh.XXXXXX)
  TMPS+=("$SSH_DIR")
  SSH=(ssh -o "ControlPath=$SSH_DIR/master")
  if [ -n "$PORT" ]; then SSH+=(-p "$PORT"); fi
  if [ -n "$IDENTITY" ]; then SSH+=(-i "$IDENTITY" -o IdentitiesOnly=yes); fi
  local o
  for o in "${SSH_OPTS[@]}"; do SSH+=(-o "$o"); done
  say "connecting to $HOST"
  if ! "${SSH[@]}" -o ControlMaster=yes -o ControlPersist=no -o ServerAliveInterval=15 -f -N "$HOST" \
    </dev/null >/dev/null 2>"$SSH_DIR/log"; then
    cat "$SSH_DIR/log" >&2
    die "cannot connect to $HOST over ssh"
  fi
  SSH+=(-o ControlMaster=no)
}

# The robot's answers to preflight, as R_<key> variables.
preflight_remote() {
  local out line k v
  out=$("${SSH[@]}" "$HOST" "bash -s -- preflight" <"$SELF") || die "preflight on $HOST failed"
  R_MACHINE='' R_UID='' R_SUDO='' R_TEGRA='' R_PID1='' R_SYSTEMD='' R_BOOTED='' R_TAR='' R_NODE='' R_CURRENT=''
  R_FREE_OPT=0 R_FREE_TMP=0 R_RELEASES=()
  while IFS= read -r line; do
    k=${line%%=*}
    v=${line#*=}
    case $k in
      machine) R_MACHINE=$v ;;
      uid) R_UID=$v ;;
      sudo) R_SUDO=$v ;;
      tegra) R_TEGRA=$v ;;
      pid1) R_PID1=$v ;;
      systemd) R_SYSTEMD=$v ;;
      booted) R_BOOTED=$v ;;
      tar) R_TAR=$v ;;
      free_opt) R_FREE_OPT=$v ;;
      free_tmp) R_FREE_TMP=$v ;;
      node) R_NODE=$v ;;
      current) R_CURRENT=${v:-none} ;;
      release) R_RELEASES+=("$v") ;;
    esac
  done <<<"$out"
}

# check_robot: what preflight found, said; refuses what flash.sh cannot install on.
check_robot() {
  local arch
  case $R_MACHINE in
    aarch64) arch=arm64 ;;
    x86_64) arch=x64 ;;
    *) die "$HOST is ${R_MACHINE:-unknown}: reflex runs on aarch64 (a Jetson) or x86_64" ;;
  esac
  if [ "$ARCH_GIVEN" -eq 0 ] && [ "$arch" != arm64 ]; then
    die "$HOST is $R_MACHINE, not a Jetson (aarch64): give --arch x64 to install there anyway"
  fi
  [ "$arch" = "$ARCH" ] || die "$HOST is $R_MACHINE (linux-$arch), not linux-$ARCH (--arch)"
  SUDO=
  if [ "$R_UID" != 0 ]; then
    [ "$R_SUDO" = yes ] || die "$HOST: logged in as uid $R_UID, not root, and without passwordless sudo there: log in as root, or give the user passwordless sudo"
    SUDO='sudo -n '
  fi
  if [ -n "$R_TEGRA" ]; then
    # "# R36 (release), REVISION: 4.3, GCID: ...": L4T R36.4.3, which is JetPack 6.
    local l4t rev jp
    l4t=$(printf '%s' "$R_TEGRA" | sed -n 's/^# R\([0-9]*\).*/\1/p')
    rev=$(printf '%s' "$R_TEGRA" | sed -n 's/.*REVISION: *\([0-9.]*\).*/\1/p')
    case $l4t in 32) jp=4 ;; 35) jp=5 ;; 36) jp=6 ;; 38) jp=7 ;; *) jp='?' ;; esac
    say "$HOST: Jetson, L4T R$l4t.$rev (JetPack $jp)"
  elif [ "$ARCH_GIVEN" -eq 1 ]; then
    say "$HOST: not a Jetson (no /etc/nv_tegra_release); going on (--arch $ARCH)"
  else
    die "$HOST: not a Jetson (no /etc/nv_tegra_release): give --arch arm64 to install there anyway"
  fi
  if [ "$R_PID1" != systemd ] || [ "$R_BOOTED" != yes ] || [ "$R_SYSTEMD" = offline ]; then
    die "$HOST does not run systemd as PID 1 (PID 1 is ${R_PID1:-unknown}; systemctl is-system-running: ${R_SYSTEMD:-no answer})"
  fi
  say "$HOST: $R_MACHINE, systemd ${R_SYSTEMD:-running}, $((R_FREE_OPT / 1024)) MiB free for /opt/reflex, current release: ${R_CURRENT#releases/}"
  [ "$R_TAR" = yes ] || die "$HOST has no tar"
}

# ship_and_run NAMES... -- ARGS...: send NAMES (paths relative to their folder, each as
# -C DIR NAME pairs) as one tar stream into a temp dir on the robot, and run the flash.sh in it
# there with ARGS ($d in ARGS is that dir). The temp dir goes when it is done. Prints nothing;
# returns the robot's exit status (255: the connection was lost).
ship_and_run() {
  local tarargs=() args=''
  while [ "$1" != -- ]; do tarargs+=("$1"); shift; done
  shift
  local a
  for a in "$@"; do
    case $a in "\$d/"*) args+=" \"\$d\"/$(shq "${a#\$d/}")" ;; *) args+=" $(shq "$a")" ;; esac
  done
  # On the robot: a lost connection must not stop flash.sh between two steps (SIGHUP, SIGPIPE).
  local script
  script="set -e; d=\$(mktemp -d /var/tmp/reflex-flash.XXXXXX 2>/dev/null || mktemp -d); trap 'rm -rf \"\$d\"' EXIT; trap '' HUP PIPE; tar --no-same-owner -C \"\$d\" -xf -; rc=0; bash \"\$d/flash.sh\"$args || rc=\$?; exit \$rc"
  local rc=0
  tar --owner=0 --group=0 --numeric-owner -cf - "${tarargs[@]}" | "${SSH[@]}" "$HOST" "${SUDO}sh -c $(shq "$script")" || rc=$?
  return "$rc"
}

mode_flags() {
  case $MODE in dry-run) echo --dry-run ;; check) echo --check ;; esac
  if [ "$FORCE" -eq 1 ]; then echo --force; fi
  printf '%s\n' --keep "$KEEP" --wait "$WAIT"
}

cmd_ssh() {
  HOST=$1
  # ssh would take it for an option.
  case $HOST in -*) die "ssh: $HOST is not a host" ;; esac
  local action=${2:-install}
  case $action in install | rollback) ;; *) usage ;; esac
  ssh_open
  preflight_remote
  check_robot
  local flags=() f rc=0
  while IFS= read -r f; do flags+=("$f"); done < <(mode_flags)
  if [ "$action" = rollback ]; then
    ship_and_run -C "$ROOT" "$(basename "$SELF")" -- "${flags[@]}" rollback || rc=$?
    ssh_done "$rc"
  fi

  if [ -z "$RELEASE_DIR" ]; then
    # No release given: build one for the robot into the cache (not a change to the robot).
    local saved=$MODE
    MODE=apply
    cmd_release "$ROOT/.cache/releases"
    MODE=$saved
    PENDING=0
  fi
  RELEASE_DIR=$(cd "$RELEASE_DIR" && pwd)
  [ -f "$RELEASE_DIR/MANIFEST" ] || die "$RELEASE_DIR is not a release (no RELEASE/MANIFEST)"
  local version arch node sha r send=() args=()
  version=$(release_field "$RELEASE_DIR" version)
  arch=$(release_field "$RELEASE_DIR" arch)
  node=$(release_field "$RELEASE_DIR" node)
  [ "$arch" = "$ARCH" ] || die "$RELEASE_DIR is for linux-$arch, $HOST is linux-$ARCH"
  NODE_TGZ=$(node_tgz "$arch" "$node")
  NODE_STAMP=$(node_stamp "$NODE_TGZ" "$arch" "$node")
  sha=$(sha256sum "$RELEASE_DIR/MANIFEST" | cut -d' ' -f1)
  local parent name
  parent=$(dirname "$RELEASE_DIR")
  name=$(basename "$RELEASE_DIR")
  local installed=0 send_kib=0 inst_kib=0 k
  for r in "${R_RELEASES[@]}"; do
    if [ "$r" = "$version $sha" ]; then installed=1; fi
  done
  if [ "$installed" -eq 1 ]; then
    # The same release is there already: install from it, send nothing but flash.sh.
    args+=(--release "/opt/reflex/releases/$version")
  elif [ "$MODE" = apply ]; then
    k=$(du -sk "$RELEASE_DIR" | cut -f1)
    send_kib=$k
    inst_kib=$k
    say "sending release $version ($((k / 1024)) MiB) to $HOST"
    send+=(-C "$parent" "$name")
    args+=(--release "\$d/$name")
  else
    # --check and --dry-run only compare: the release's MANIFEST and what it installs besides
    # itself (units, rules, the first-boot step, the example config) are enough for that.
    local p
    send+=(-C "$parent")
    for p in RELEASE MANIFEST systemd flash config; do
      if [ -e "$RELEASE_DIR/$p" ]; then send+=("$name/$p"); fi
    done
    args+=(--release "\$d/$name")
  fi
  args+=(--node-stamp "$NODE_STAMP")
  if [ "$R_NODE" != "$NODE_STAMP" ] && [ "$MODE" = apply ]; then
    k=$(du -sk "$NODE_TGZ" | cut -f1)
    say "sending Node $node for linux-$arch ($((k / 1024)) MiB) to $HOST"
    send+=(-C "$(dirname "$NODE_TGZ")" "$(basename "$NODE_TGZ")")
    args+=(--node-tgz "\$d/$(basename "$NODE_TGZ")")
    send_kib=$((send_kib + k))
    # Unpacked, about 4 times its tarball.
    inst_kib=$((inst_kib + 4 * k))
  fi
  # What is sent lands in /var/tmp, then is installed under /opt/reflex: on a Jetson both are
  # on one filesystem.
  if [ "$R_FREE_TMP" -lt "$send_kib" ]; then
    die "$HOST has $((R_FREE_TMP / 1024)) MiB free in /var/tmp; $((send_kib / 1024)) MiB are to be sent"
  fi
  if [ "$R_FREE_OPT" -lt $((send_kib + inst_kib)) ]; then
    die "$HOST has $((R_FREE_OPT / 1024)) MiB free for /opt/reflex; the install needs $(((send_kib + inst_kib) / 1024)) MiB"
  fi
  ship_and_run -C "$ROOT" "$(basename "$SELF")" "${send[@]}" -- "${flags[@]}" install "${args[@]}" || rc=$?
  ssh_done "$rc"
}

# ssh_done STATUS: exit with the robot's status (a lost connection is a failure, 2).
ssh_done() {
  local rc=$1
  if [ "$rc" -eq 255 ]; then say "lost the connection to $HOST"; rc=2; fi
  DONE=1
  exit "$rc"
}

# --- main ------------------------------------------------------------------------------------

case $(uname -m) in x86_64) HOST_ARCH=x64 ;; aarch64 | arm64) HOST_ARCH=arm64 ;; *) HOST_ARCH=$(uname -m) ;; esac
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) MODE=dry-run ;;
    --check) MODE=check ;;
    --force) FORCE=1 ;;
    --keep) KEEP=${2:?--keep N}; shift ;;
    --arch) ARCH=${2:?--arch arm64|x64}; ARCH_GIVEN=1; shift ;;
    --version) VERSION=${2:?--version V}; shift ;;
    --release) RELEASE_DIR=${2:?--release DIR}; shift ;;
    --port) PORT=${2:?--port P}; shift ;;
    --identity) IDENTITY=${2:?--identity FILE}; shift ;;
    -o) SSH_OPTS+=("${2:?-o SSH_OPTION}"); shift ;;
    --wait) WAIT=${2:?--wait SECONDS}; shift ;;
    --node-tgz) NODE_TGZ=${2:?--node-tgz FILE}; shift ;;
    --node-stamp) NODE_STAMP=${2:?--node-stamp STAMP}; shift ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1 (--help)" ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
case $ARCH in arm64 | x64) ;; *) die "--arch is arm64 or x64, not $ARCH" ;; esac
case $KEEP in '' | *[!0-9]*) die "--keep takes a number" ;; esac
case $WAIT in '' | *[!0-9]*) die "--wait takes a number of seconds" ;; esac
case $PORT in *[!0-9]*) die "--port takes a number" ;; esac
case $ARCH in arm64) CROSS=aarch64-linux-gnu- ;; x64) CROSS=x86_64-linux-gnu- ;; esac
[ ${#ARGS[@]} -ge 1 ] || usage

case ${ARGS[0]} in
  release)
    [ ${#ARGS[@]} -eq 2 ] || usage
    TARGET=
    cmd_release "${ARGS[1]}"
    ;;
  rootfs)
    [ ${#ARGS[@]} -eq 2 ] || usage
    TARGET=${ARGS[1]}
    if [ -z "$RELEASE_DIR" ]; then
      # No release given: build one for the robot into the cache (not a change to the target).
      saved=$MODE
      MODE=apply
      cmd_release "$ROOT/.cache/releases"
      MODE=$saved
      PENDING=0
    fi
    RELEASE_DIR=$(cd "$RELEASE_DIR" && pwd)
    cmd_rootfs
    ;;
  ssh)
    { [ ${#ARGS[@]} -eq 2 ] || [ ${#ARGS[@]} -eq 3 ]; } || usage
    cmd_ssh "${ARGS[1]}" "${ARGS[2]:-install}"
    ;;
  install)
    [ ${#ARGS[@]} -eq 1 ] || usage
    cmd_install
    ;;
  rollback)
    [ ${#ARGS[@]} -eq 1 ] || usage
    cmd_rollback
    ;;
  preflight)
    cmd_preflight </dev/null
    DONE=1
    exit 0
    ;;
  *) usage ;;
esac

DONE=1
case $MODE in
  check)
    if [ "$PENDING" -gt 0 ]; then echo "$PENDING change(s) pending"; exit 1; fi
    echo "up to date"
    ;;
  dry-run) echo "$PENDING change(s) would be made" ;;
  apply) if [ "$PENDING" -eq 0 ]; then say "up to date"; else say "$PENDING change(s) made"; fi ;;
esac
