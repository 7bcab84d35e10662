#!/usr/bin/env bash
# The GPU check of issue 6, for a lent GPU machine (Linux x86-64, NVIDIA driver, no Node.js, no internet).
#
#   tools/gpu-check.sh pack   here: builds tsc-nn and packs into .gpu/ what the machine lacks: this Node binary,
#                             bin/ and dist/, and the runtime packages (Dawn's Linux x64 addon only; not the `gl`
#                             addon built against this machine's X libraries, nor gpu.js's unused webgpu@0.2.9).
#   tools/gpu-check.sh run    there (the device tool copies the checkout, `carry` brings .gpu and .gl): unpacks,
#                             installs the Vulkan/EGL loaders from .gl (see the device README), then runs the
#                             ShuffleNet benchmarks and short training-step timings on `webgpu` (Dawn's Vulkan
#                             backend on the GPU) and on `wasm` (the machine's CPUs) and writes them under $OUT.
#   tools/gpu-check.sh run smoke  the same with two small configurations (a rehearsal without a GPU).
#
# device tool: run(command: "bash tools/gpu-check.sh run", carry: [".gpu", ".gl"], timeout_s: 480)
set -euo pipefail
cd "$(dirname "$0")/.."

pack() {
  npm run build >/dev/null
  rm -rf .gpu && mkdir -p .gpu
  tar -C "$(dirname "$(readlink -f "$(command -v node)")")" -cJf .gpu/node.tar.xz node
  mapfile -t modules < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/' \
    | grep -v -E '^node_modules/(gl|webgpu)(/|$)' | sort -u)
  tar -cJf .gpu/tsc-nn.tar.xz --exclude='node_modules/dawn-webgpu/dist/darwin-*' --exclude='node_modules/dawn-webgpu/dist/win32-*' \
    --exclude='node_modules/dawn-webgpu/dist/linux-arm64' bin dist package.json "${modules[@]}"
  du -ch .gpu/* | tail -n 1
}

run() {
  local out="${OUT:-/tmp/gpu-check-out}" app=/tmp/tsc-nn
  mkdir -p "$out" "$app/node"
  if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  tar -C "$app/node" -xJf .gpu/node.tar.xz
  tar -C "$app" -xJf .gpu/tsc-nn.tar.xz
  export PATH="$app/node:$PATH" TSC_NN_CACHE="$app/cache"
  cd "$app"
  {
    echo "# tsc-nn GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
    echo "node $(node --version), $(nproc) CPUs"
  } | tee "$out/gpu-check.txt"
  local configs=(
    "--size 0.5x --mode infer --batch 64"
    "--size 0.5x --mode train --batch 64"
    "--size 2.0x --stem imagenet --mode infer --batch 8"
    "--size 2.0x --stem imagenet --mode train --batch 8"
  )
  # `run smoke`: two small configurations, to rehearse the whole script on a machine without a GPU.
  if [ "${1:-}" = smoke ]; then configs=("--size 0.5x --mode infer --batch 8" "--size 0.5x --mode train --batch 8"); fi
  for backend in webgpu wasm; do
    for c in "${configs[@]}"; do
      # shellcheck disable=SC2086
      if node bin/tsc-nn.js bench --backend "$backend" $c --steps 3 --budget-s 60 --json >>"$out/bench.jsonl" 2>>"$out/stderr.txt"; then
        tail -n 1 "$out/bench.jsonl" | tee -a "$out/gpu-check.txt"
      else
        echo "bench --backend $backend $c failed: $(grep -v '^Warning' "$out/stderr.txt" | tail -n 1)" | tee -a "$out/gpu-check.txt"
      fi
    done
  done
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:-}" ;;
  *) echo "usage: tools/gpu-check.sh pack|run [smoke]" >&2; exit 2 ;;
esac
