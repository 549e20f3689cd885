#!/bin/sh
# bench/gpu.mjs on a lent GPU machine, which has no Node, no npm registry and maybe no Vulkan
# loader: what it needs travels in .gpu-carry/ (ignored by git), packed here first.
#   here:   node scripts/ensure-built.mjs && sh bench/gpu-device.sh pack
#   there:  carry [".gpu-carry", "dist", "build"], command "sh bench/gpu-device.sh run"
# `run` writes bench-gpu.log and BENCHMARKS.md under $OUT (copy the gpu section back here).
# It passes BENCH_GPU_* and BENCH_RUNS on to bench/gpu.mjs.
set -eu
CARRY=.gpu-carry

pack() {
  [ -f dist/index.js ] && [ -d build ] || { echo "build first: node scripts/ensure-built.mjs" >&2; exit 1; }
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx "/$CARRY/" "$exclude" 2>/dev/null || echo "/$CARRY/" >> "$exclude"
  rm -rf "$CARRY" && mkdir -p "$CARRY/debs" /tmp/gpu-carry-apt/partial
  gzip -6 -c "$(command -v node)" > "$CARRY/node.gz"
  tar czf "$CARRY/webgpu.tgz" -C node_modules webgpu/package.json webgpu/index.js webgpu/dist/linux-x64
  # The Vulkan loader and the GL dispatch libraries NVIDIA's Vulkan driver links against, for amd64.
  apt="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-carry-apt"
  # shellcheck disable=SC2086
  apt-get $apt update >/dev/null
  # shellcheck disable=SC2086
  (cd "$CARRY/debs" && apt-get $apt download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 >/dev/null)
  du -sh "$CARRY" dist build
}

run() {
  for deb in "$CARRY"/debs/*.deb; do dpkg -x "$deb" /; done
  ldconfig
  gzip -dc "$CARRY/node.gz" > /tmp/node && chmod +x /tmp/node
  mkdir -p node_modules && tar xzf "$CARRY/webgpu.tgz" -C node_modules
  if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  status=0
  /tmp/node bench/gpu.mjs > "${OUT:-.}/bench-gpu.log" 2>&1 || status=$?
  cat "${OUT:-.}/bench-gpu.log"
  if [ -n "${OUT:-}" ]; then cp BENCHMARKS.md "$OUT/"; fi
  exit "$status"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: sh bench/gpu-device.sh pack|run" >&2; exit 2 ;;
esac
