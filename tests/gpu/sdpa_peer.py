"""Peer timings for the CUDA kernel figures: PyTorch SDPA (cuDNN and FlashAttention-2 backends
for prefill, default backends for decode) on the shapes attnbench_kernel_bench times, bf16, CUDA
events, L2 flushed, median of 15 calls. Prints one line per shape. Argument: prefill, decode or
all (default)."""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

flush = torch.empty(2 * 50 * 2**20, dtype=torch.uint8, device="cuda")


def median_ms(fn, reps=15):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        flush.fill_(1)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def prefill():
    for causal in (False, True):
        for n in (4096, 8192, 16384):
            q = torch.randn(1, 32, n, 128, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(1, 32, n, 128, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            flops = 4 * 32 * n * n * 128 * (0.5 if causal else 1.0)
            for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION),
                                  ("flash2", SDPBackend.FLASH_ATTENTION)):
                with sdpa_kernel([backend]):
                    ms = median_ms(
                        lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                print(f"sdpa_{name} prefill n={n} causal={int(causal)} {ms:.3f} ms "
                      f"{flops / ms / 1e9:.1f} TFLOP/s", flush=True)


def decode():
    for n in (32768, 65536, 131072):
        q = torch.randn(8, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(8, 8, n, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        gb = 2 * 8 * 8 * n * 128 * 2
        print(f"sdpa decode b=8 n={n} {ms:.3f} ms {gb / ms / 1e6:.1f} GB/s", flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("all", "prefill"):
        prefill()
    if what in ("all", "decode"):
        decode()
