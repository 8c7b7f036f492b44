#!/bin/bash
# One device session of the CUDA kernel work: [gpu] tests, the wgmma-vs-mma.sync prefill check,
# the kernel timing driver, the prefill kernel versions side by side, the PyTorch SDPA peer
# timings, and compute-sanitizer memcheck and racecheck on the prefill tests. Run from the repo
# root on the GPU machine with the binaries in $1 (default build-cuda-k/dev); logs go to $OUT.
# BENCH picks the driver's part (all, prefill, decode); the SDPA peer (tools/peers) times the
# same part. The driver is bench/kernel_bench_cuda.cu (attnbench_kernel_bench).
set -u
dev=${1:-build-cuda-k/dev}
out=${OUT:-/tmp}
bench=${BENCH:-all}
export LD_LIBRARY_PATH=$PWD/$dev:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
# cuBLAS 13 from wherever the image has it (toolkit or the PyTorch wheels).
if ldd $dev/test_adapters_cuda | grep -q "not found"; then
  lib=$(find / -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname $lib):$LD_LIBRARY_PATH
fi
ldd $dev/test_adapters_cuda | grep -E "cublas|gomp|not found"
nvidia-smi -L
# Registers / spills of the prefill kernels (bf16, head_dim 128) and the decode kernel (group 4).
cuobjdump --dump-resource-usage $dev/attnbench_kernel_bench 2>/dev/null |
  grep -A1 -E "flash_prefill_kernelI13__nv_bfloat16Li128E|flash_prefill_wgmma_kernelI13__nv_bfloat16|decode_split_kernelI13__nv_bfloat16Li128ELi4E" |
  grep -oE "Function [^:]{0,110}|REG:[0-9]+ STACK:[0-9]+ SHARED:[0-9]+ LOCAL:[0-9]+" |
  sed 's/_ZN9attnbench4cuda6detail//' | paste - - | sort -u | tee $out/regs.log
step() { echo "== $1"; shift; timeout "$@"; echo "rc=$?"; }
step "tests" 120 $dev/test_adapters_cuda 2>&1 | tail -4 | tee $out/tests.log
step "check" 60 $dev/attnbench_kernel_bench check 2>&1 | tee $out/check.log
step "bench" 170 $dev/attnbench_kernel_bench $bench 2>&1 | tee $out/bench.log
[ "$bench" != "decode" ] && step "tilings" 90 $dev/attnbench_kernel_bench tilings 2>&1 |
  grep -v "^device copy" | tee $out/tilings.log
phase=$bench; [ "$phase" = all ] && phase=both
step "sdpa" 120 env PYTHONUNBUFFERED=1 python3 tools/peers/sdpa_peer.py --phase $phase 2>&1 | tee $out/sdpa.log
# The prefill tests: dense-oracle cases (wgmma kernel at head_dim 128, mma.sync at 64) and the
# sink/window masks; quest's for the decode kernels.
step "memcheck" 150 compute-sanitizer --tool memcheck $dev/test_adapters_cuda \
  "cuda adapters equal the dense oracle when nothing is dropped","cuda sink/window adapters equal their CPU rule","cuda quest reads only its budget" 2>&1 |
  tail -6 | tee $out/memcheck.log
step "racecheck" 150 compute-sanitizer --tool racecheck $dev/test_adapters_cuda \
  "cuda sink/window adapters equal their CPU rule","cuda quest reads only its budget" 2>&1 |
  tail -6 | tee $out/racecheck.log
