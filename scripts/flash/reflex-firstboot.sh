#!/usr/bin/env bash
# reflex-firstboot: run by reflex-firstboot.service (installed by flash.sh) on the robot, as root,
# while /opt/reflex/current lacks .firstboot-done. It builds, with the pinned Node's headers
# (/opt/reflex/node/include) and node-gyp from the release's own node_modules (no network):
#   - @u4/opencv4nodejs against the device's OpenCV (JetPack's, in /usr/include/opencv4),
#   - reflex's native addon, when the release came without one for this architecture.
# Needs a compiler on the robot: apt-get install build-essential python3 (and JetPack's OpenCV
# development files, nvidia-opencv-dev or libopencv-dev). Then it writes the stamp.
set -euo pipefail

prefix=${REFLEX_PREFIX:-/opt/reflex}
release=$(readlink -f "$prefix/current")
node=$prefix/node/bin/node
multiarch=$(gcc -dumpmachine 2>/dev/null || echo aarch64-linux-gnu)

# node-gyp on PATH for opencv4nodejs's installer, from the release, against the local headers.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$node" "$release/node_modules/node-gyp/bin/node-gyp.js" >"$shim/node-gyp"
chmod 755 "$shim/node-gyp"
export PATH="$shim:$prefix/node/bin:$PATH"
export npm_config_nodedir="$prefix/node"

if [ ! -e "$release/native/build/Release/reflex_native.node" ]; then
  echo "reflex-firstboot: building reflex's native addon"
  (cd "$release/native" && node-gyp rebuild)
fi

cv=$release/node_modules/@u4/opencv4nodejs
if [ ! -e "$cv/build/Release/opencv4nodejs.node" ]; then
  echo "reflex-firstboot: building @u4/opencv4nodejs against /usr/include/opencv4 (several minutes)"
  (cd "$cv" && OPENCV4NODEJS_DISABLE_AUTOBUILD=1 OPENCV_INCLUDE_DIR=/usr/include/opencv4 \
    OPENCV_LIB_DIR="/usr/lib/$multiarch" OPENCV_BIN_DIR=/usr/bin "$node" bin/install.js --nobuild rebuild)
fi

touch "$release/.firstboot-done"
echo "reflex-firstboot: done for $release"
