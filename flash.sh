#!/usr/bin/env bash
# flash.sh: put reflex on a robot. Idempotent: each step looks before it changes anything.
#
#   flash.sh [OPTIONS] release [--arch arm64|x64] [--version V] OUT_DIR
#       Build the release directory OUT_DIR/reflex-<version>-linux-<arch>/ from this checkout
#       (run `npm run build` first): dist/src, bin/, package.json, production node_modules,
#       native/ (sources, and the addon when built for <arch>), the tracked default policies
#       under models/, config/example.yaml, systemd/, flash/ (first-boot step), RELEASE, MANIFEST.
#   flash.sh [OPTIONS] rootfs L4T_DIR [--release DIR] [--arch arm64|x64]
#       Install into a root filesystem before flashing (without --release, build one first).
#
# OPTIONS: --dry-run  print what would change, change nothing
#          --check    change nothing; exit 1 when changes are pending, 0 when up to date
#          --force    overwrite /etc/reflex/reflex.yaml with config/example.yaml
#          --keep N   previous releases kept beside the current one (default 3)
# Exit status: 0 done (or up to date), 1 changes pending (--check), 2 usage or failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=apply
FORCE=0
KEEP=3
PENDING=0
ARCH=arm64
VERSION=
RELEASE_DIR=
TMPS=()
DONE=0

die() { echo "flash.sh: $*" >&2; exit 2; }
say() { echo "flash.sh: $*" >&2; }
# Any failure exits 2, so that --check's 1 always means "changes pending".
cleanup() {
  local rc=$?
  if [ ${#TMPS[@]} -gt 0 ]; then rm -rf "${TMPS[@]}"; fi
  if [ "$rc" -ne 0 ] && [ "$DONE" -eq 0 ]; then exit 2; fi
}
trap cleanup EXIT

# One pending change: say it, count it; returns 0 when the caller should make it.
change() {
  PENDING=$((PENDING + 1))
  case $MODE in
    apply) say "$*"; return 0 ;;
    *) echo "would: $*"; return 1 ;;
  esac
}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

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

# fetch_node ARCH VERSION: unpack node-linux-ARCH@VERSION from the npm registry into .cache/node
# (npm pack checks the registry's integrity); offline once it is there. Prints the folder.
fetch_node() {
  local arch=$1 version=$2 cache=$ROOT/.cache/node
  local tgz=$cache/node-linux-$arch-$version.tgz dir=$cache/node-linux-$arch-$version
  mkdir -p "$cache"
  if [ ! -f "$tgz" ]; then
    say "fetching node-linux-$arch@$version from the npm registry into .cache/node"
    (cd "$cache" && npm pack --silent "node-linux-$arch@$version" >/dev/null) ||
      die "cannot fetch node-linux-$arch@$version (offline? put its npm pack tarball in $cache)"
  fi
  if [ ! -x "$dir/package/bin/node" ]; then
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    tar -xzf "$tgz" -C "$dir.tmp"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir/package"
}

# ensure_node ARCH VERSION: <root>/opt/reflex/node holds bin/node, the headers (the first boot
# builds addons against them) and LICENSE of exactly that package.
ensure_node() {
  local arch=$1 version=$2 pkg dst=$TARGET/opt/reflex/node stamp
  pkg=$(fetch_node "$arch" "$version")
  stamp="node-linux-$arch@$version $(sha256sum "$ROOT/.cache/node/node-linux-$arch-$version.tgz" | cut -d' ' -f1)"
  if [ -f "$dst/.flash-stamp" ] && [ "$(cat "$dst/.flash-stamp")" = "$stamp" ] &&
    cmp -s "$pkg/bin/node" "$dst/bin/node"; then
    return 0
  fi
  change "install Node $version (linux-$arch) in /opt/reflex/node" || return 0
  local tmp=$dst.flash-tmp
  rm -rf "$tmp"
  mkdir -p "$tmp/bin" "$tmp/include"
  cp -a "$pkg/bin/node" "$tmp/bin/node"
  cp -a "$pkg/include/node" "$tmp/include/node"
  # OpenSSL's per-platform headers: only this architecture's (64 MiB less).
  local ossl=linux-aarch64
  if [ "$arch" = x64 ]; then ossl=linux-x86_64; fi
  find "$tmp/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name "$ossl" -exec rm -rf {} +
  cp "$pkg/LICENSE" "$tmp/"
  printf '%s\n' "$stamp" >"$tmp/.flash-stamp"
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
  if [ ! -f "$RELEASE_DIR/RELEASE" ] || [ ! -f "$RELEASE_DIR/MANIFEST" ]; then
    die "$RELEASE_DIR is not a release (no RELEASE/MANIFEST)"
  fi
  version=$(release_field "$RELEASE_DIR" version)
  node=$(release_field "$RELEASE_DIR" node)
  arch=$(release_field "$RELEASE_DIR" arch)
  ensure_node "$arch" "$node"
  ensure_release "$RELEASE_DIR" "$version"
  ensure_link "releases/$version" "$TARGET/opt/reflex/current"
  prune_releases "$version"
  ensure_user
  ensure_units "$RELEASE_DIR"
  ensure_config "$RELEASE_DIR"
  ensure_cli
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
    --arch) ARCH=${2:?--arch arm64|x64}; shift ;;
    --version) VERSION=${2:?--version V}; shift ;;
    --release) RELEASE_DIR=${2:?--release DIR}; shift ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1 (--help)" ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
case $ARCH in arm64 | x64) ;; *) die "--arch is arm64 or x64, not $ARCH" ;; esac
case $KEEP in '' | *[!0-9]*) die "--keep takes a number" ;; esac
case $ARCH in arm64) CROSS=aarch64-linux-gnu- ;; x64) CROSS=x86_64-linux-gnu- ;; esac
[ ${#ARGS[@]} -eq 2 ] || usage

case ${ARGS[0]} in
  release)
    TARGET=
    cmd_release "${ARGS[1]}"
    ;;
  rootfs)
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
