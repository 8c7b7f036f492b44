#!/bin/bash
# One device session of the CUDA kernel work: [gpu] tests, compute-sanitizer memcheck and
# racecheck on them, the kernel timing driver and the PyTorch SDPA peer timings. Run from the repo
# root on the GPU machine with the binaries in $1 (default build-cuda-k/dev); logs go to $OUT.
set -u
dev=${1:-build-cuda-k/dev}
out=${OUT:-/tmp}
export LD_LIBRARY_PATH=$PWD/$dev:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
# cuBLAS 13 from wherever the image has it (toolkit or the PyTorch wheels).
if ldd $dev/test_adapters_cuda | grep -q "not found"; then
  lib=$(find / -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)
  [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname $lib):$LD_LIBRARY_PATH
fi
ldd $dev/test_adapters_cuda | grep -E "cublas|gomp|not found"
nvidia-smi -L
# Registers / spills of the prefill and decode kernels (bf16, head_dim 128, group 4).
cuobjdump --dump-resource-usage $dev/attnbench_kernel_bench 2>/dev/null |
  grep -A1 -E "flash_prefill_kernelI13__nv_bfloat16Li128E|decode_split_kernelI13__nv_bfloat16Li128ELi4E" |
  grep -oE "Function [^:]{0,60}|REG:[0-9]+ STACK:[0-9]+ SHARED:[0-9]+ LOCAL:[0-9]+" | tee $out/regs.log
step() { echo "== $1"; shift; timeout "$@"; echo "rc=$?"; }
step "tests" 120 $dev/test_adapters_cuda 2>&1 | tail -40 | tee $out/tests.log
step "bench" 170 $dev/attnbench_kernel_bench ${BENCH:-all} 2>&1 | tee $out/bench.log
step "sdpa" 90 python3 tests/gpu/sdpa_peer.py 2>&1 | tee $out/sdpa.log
step "memcheck" 100 compute-sanitizer --tool memcheck $dev/test_adapters_cuda \
  "cuda sink/window adapters equal their CPU rule","cuda quest reads only its budget" 2>&1 |
  tail -15 | tee $out/memcheck.log
step "racecheck" 80 compute-sanitizer --tool racecheck $dev/test_adapters_cuda \
  "cuda quest reads only its budget" 2>&1 | tail -15 | tee $out/racecheck.log
