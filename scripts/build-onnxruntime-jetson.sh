#!/usr/bin/env bash
# Builds onnxruntime with CUDA and TensorRT, and its Node.js binding with reflex's TensorRT
# options patch, on a Jetson (run it there: it needs the JetPack's CUDA, cuDNN and TensorRT).
#
#   scripts/build-onnxruntime-jetson.sh 6.0      # or 6.1, 6.2; installs to /opt/reflex/onnxruntime-node
#
# Then in /etc/reflex/reflex.yaml:
#   policy:
#     providers: [tensorrt, cuda, cpu]
#     onnxruntimePath: /opt/reflex/onnxruntime-node
#
# The first start builds the TensorRT engines (minutes on an Orin); they are cached under
# paths.stateDir/trt and reused at every later start.
set -euo pipefail

jetpack="${1:-}"
prefix="${PREFIX:-/opt/reflex/onnxruntime-node}"
work="${WORK:-$HOME/onnxruntime-build}"
here="$(cd "$(dirname "$0")/.." && pwd)"

# Pinned per JetPack: the onnxruntime release that supports that JetPack's TensorRT and CUDA.
case "$jetpack" in
  6.0) ort=v1.18.1; cuda=12.2 ;;   # L4T R36.3: CUDA 12.2, cuDNN 8.9, TensorRT 8.6
  6.1|6.2) ort=v1.20.1; cuda=12.6 ;;  # L4T R36.4: CUDA 12.6, cuDNN 9.3, TensorRT 10.3
  *) echo "usage: $0 6.0|6.1|6.2  (the JetPack release of this Jetson)" >&2; exit 64 ;;
esac

[ "$(uname -m)" = aarch64 ] || { echo "run this on the Jetson (aarch64)" >&2; exit 1; }
[ -d "/usr/local/cuda-$cuda" ] || { echo "CUDA $cuda not found: is this JetPack $jetpack?" >&2; exit 1; }
command -v node >/dev/null || { echo "Node.js is needed for the binding" >&2; exit 1; }

mkdir -p "$work"
cd "$work"
[ -d onnxruntime ] || git clone --recursive --branch "$ort" --depth 1 https://github.com/microsoft/onnxruntime.git
cd onnxruntime
git apply --recount --check "$here/native/onnxruntime/tensorrt-options.patch" 2>/dev/null &&
  git apply --recount "$here/native/onnxruntime/tensorrt-options.patch" ||
  echo "patch already applied (or does not apply to $ort: check native/onnxruntime/)" >&2

# Orin is compute capability 8.7; the build takes about two hours on an AGX Orin.
./build.sh --config Release --update --build --parallel --build_shared_lib --skip_tests \
  --use_cuda --cuda_home "/usr/local/cuda-$cuda" --cudnn_home /usr/lib/aarch64-linux-gnu \
  --use_tensorrt --tensorrt_home /usr/lib/aarch64-linux-gnu \
  --build_nodejs \
  --cmake_extra_defines CMAKE_CUDA_ARCHITECTURES=87 onnxruntime_BUILD_UNIT_TESTS=OFF

sudo mkdir -p "$prefix"
sudo cp -r js/node/dist js/node/package.json js/node/bin "$prefix/"
sudo cp -r js/common "$prefix/../onnxruntime-common" 2>/dev/null || true
echo "installed to $prefix; set policy.onnxruntimePath: $prefix" >&2
