#!/usr/bin/env python3
"""Capture a Q/K/V trace of a PyTorch / Hugging Face transformers model for attnbench.

Forward hooks on every attention module (any module with q_proj, k_proj and v_proj: Llama,
Mistral, Qwen2/3 and other Llama-style models) record, per layer, what the attention kernel
multiplies: the **post-RoPE** queries and keys and the values, before the KV heads are repeated
for grouped-query attention. A second hook on each o_proj records the attention output (heads
concatenated, before the output projection) as tensor "o"; the script recomputes causal
attention from the captured Q/K/V and checks it against "o", so a trace that does not
reproduce the model's own attention is never written silently.

Output, the format datasets/trace_io.hpp reads (`attnbench run --trace OUT`):
  OUT.safetensors  tensors q [layers, q_heads, tokens, head_dim], k and v
                   [layers, kv_heads, tokens, head_dim], o [layers, q_heads, tokens, head_dim]
                   (F32, F16 or BF16; written with the `safetensors` package), or, without
                   that package, OUT.q.npy, OUT.k.npy, OUT.v.npy, OUT.o.npy (float32 / float16);
  OUT.json         the sidecar: model, layers, q_heads, kv_heads, head_dim, tokens, positions,
                   rope_base, evidence (from --evidence), token_ids, source, check.

Examples:
  # offline, no weights: a tiny randomly initialised Llama (2 layers, 4 heads, 2 KV heads,
  # head_dim 64) on 512 random tokens
  python3 tools/traces/capture_trace.py --tiny-random --out traces/tiny_llama
  # a local checkpoint on a text prompt, evidence = tokens 100..140
  python3 tools/traces/capture_trace.py --model /models/Llama-3.2-1B --prompt-file p.txt \\
      --evidence 100:140 --dtype bf16 --out traces/llama1b
"""

import argparse
import json
import math
import os
import sys

import torch


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tiny-random", action="store_true",
                     help="a tiny randomly initialised LlamaConfig model (runs offline)")
    src.add_argument("--model", help="local path or name of a transformers causal LM")
    p.add_argument("--out", required=True, help="output stem: OUT.safetensors + OUT.json")
    p.add_argument("--prompt", help="prompt text (--model)")
    p.add_argument("--prompt-file", help="file holding the prompt text (--model)")
    p.add_argument("--tokens", type=int, default=512,
                   help="random prompt length for --tiny-random; truncation length otherwise")
    p.add_argument("--seed", type=int, default=0, help="weights and random prompt seed")
    p.add_argument("--evidence", action="append", default=[], metavar="BEGIN:END",
                   help="token span [BEGIN, END) the answer depends on; repeatable")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32",
                   help="stored dtype (npy fallback: bf16 is stored as f32)")
    p.add_argument("--model-dtype", choices=["f32", "f16", "bf16"], default=None,
                   help="compute dtype of the model (default: f32 for --tiny-random, bf16 "
                        "on a GPU otherwise)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--npy", action="store_true", help="write .npy files even if safetensors "
                                                      "is installed")
    p.add_argument("--no-output", action="store_true", help="do not store tensor o")
    return p.parse_args(argv)


TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def tiny_random_model(args):
    """2 layers, 4 query heads, 2 KV heads, head_dim 64: GQA with every code path of a real
    Llama, small enough for a CPU. Random weights give diffuse attention, which is enough to
    test the capture and the import, not to study attention patterns."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=64, max_position_embeddings=max(4096, args.tokens))
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, config.vocab_size, (1, args.tokens), generator=gen)
    return model, ids, "tiny-random-llama(seed=%d)" % args.seed


def pretrained_model(args, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = args.prompt
    if args.prompt_file:
        with open(args.prompt_file, encoding="utf-8") as f:
            text = f.read()
    if not text:
        sys.exit("capture_trace: --model needs --prompt or --prompt-file")
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    ids = tok(text, return_tensors="pt").input_ids[:, : args.tokens]
    return model, ids, args.model


def rope_base(config):
    """rope_theta lives on the config (transformers 4) or in rope_parameters (5)."""
    base = getattr(config, "rope_theta", None)
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if base is None and isinstance(params, dict):
        base = params.get("rope_theta")
    return float(base) if base is not None else None


def attention_modules(model):
    """The attention modules in layer order."""
    found = [m for _, m in model.named_modules()
             if all(hasattr(m, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj"))]
    if not found:
        sys.exit("capture_trace: no attention module with q_proj/k_proj/v_proj/o_proj found")
    return found


class capture:
    """Hooks recording post-RoPE q, k, v (from the attention module's inputs, recomputed with
    the module's own projections, norms and rotary function) and the attention output."""

    def __init__(self, modules):
        self.q, self.k, self.v, self.o = {}, {}, {}, {}
        self.handles = []
        for layer, m in enumerate(modules):
            self.handles.append(m.register_forward_pre_hook(self.qkv_hook(layer),
                                                            with_kwargs=True))
            self.handles.append(m.o_proj.register_forward_pre_hook(self.o_hook(layer, m)))

    def qkv_hook(self, layer):
        def hook(module, args, kwargs):
            h = kwargs.get("hidden_states", args[0] if args else None)
            pe = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)
            if h is None or pe is None:
                sys.exit("capture_trace: attention module called without hidden_states / "
                         "position_embeddings (not a Llama-style model?)")
            rotary = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb")
            shape = (*h.shape[:-1], -1, module.head_dim)
            q = module.q_proj(h).view(shape)
            k = module.k_proj(h).view(shape)
            v = module.v_proj(h).view(shape)
            # Qwen3-style per-head RMSNorm of q and k, applied before RoPE.
            if hasattr(module, "q_norm"):
                q, k = module.q_norm(q), module.k_norm(k)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            cos, sin = pe
            q, k = rotary(q, k, cos, sin)
            # batch 0: [heads, tokens, head_dim]
            self.q[layer] = q[0].detach().float().cpu()
            self.k[layer] = k[0].detach().float().cpu()
            self.v[layer] = v[0].detach().float().cpu()
        return hook

    def o_hook(self, layer, attn):
        def hook(module, args):
            x = args[0][0]  # [tokens, q_heads * head_dim]
            self.o[layer] = x.detach().float().cpu().view(x.shape[0], -1, attn.head_dim) \
                .transpose(0, 1).contiguous()
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def causal_attention(q, k, v, scale):
    """float64 reference: q [H, T, D], k and v [G, T, D] -> [H, T, D]."""
    group = q.shape[0] // k.shape[0]
    k = k.double().repeat_interleave(group, dim=0)
    v = v.double().repeat_interleave(group, dim=0)
    logits = torch.matmul(q.double(), k.transpose(1, 2)) * scale
    t = q.shape[1]
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    logits.masked_fill_(mask, float("-inf"))
    return torch.matmul(torch.softmax(logits, dim=-1), v)


def write(stem, tensors, sidecar, dtype, use_npy):
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    try:
        if use_npy:
            raise ImportError
        from safetensors.torch import save_file
        save_file({n: t.to(TORCH_DTYPES[dtype]).contiguous() for n, t in tensors.items()},
                  stem + ".safetensors", metadata={"format": "attnbench-trace"})
        written = [stem + ".safetensors"]
    except ImportError:
        import numpy as np
        npdt = np.float16 if dtype == "f16" else np.float32
        written = []
        for n, t in tensors.items():
            np.save(stem + "." + n + ".npy", t.numpy().astype(npdt))
            written.append(stem + "." + n + ".npy")
        sidecar["stored_dtype"] = "f16" if dtype == "f16" else "f32"
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
        f.write("\n")
    return written + [stem + ".json"]


def main(argv):
    args = parse_args(argv)
    if args.model_dtype:
        compute = TORCH_DTYPES[args.model_dtype]
    else:
        compute = torch.bfloat16 if (args.model and args.device.startswith("cuda")) \
            else torch.float32
    if args.tiny_random:
        model, ids, name = tiny_random_model(args)
    else:
        model, ids, name = pretrained_model(args, compute)
    model = model.to(args.device, compute).eval()
    modules = attention_modules(model)
    cap = capture(modules)
    tokens = ids.shape[1]
    positions = torch.arange(tokens).unsqueeze(0)
    with torch.no_grad():
        model(input_ids=ids.to(args.device), position_ids=positions.to(args.device),
              use_cache=False)
    cap.remove()

    layers = len(modules)
    q = torch.stack([cap.q[i] for i in range(layers)])
    k = torch.stack([cap.k[i] for i in range(layers)])
    v = torch.stack([cap.v[i] for i in range(layers)])
    o = torch.stack([cap.o[i] for i in range(layers)])
    head_dim = q.shape[-1]

    # The captured Q/K/V must reproduce the model's attention output (its own scale, causal).
    worst = 0.0
    for i, m in enumerate(modules):
        scale = getattr(m, "scaling", 1.0 / math.sqrt(head_dim))
        ref = causal_attention(q[i], k[i], v[i], scale)
        err = (ref - o[i].double()).abs().max().item() / max(o[i].abs().max().item(), 1e-30)
        worst = max(worst, err)
    # fp32 compute agrees to ~1e-5; bf16 / fp16 compute rounds q, k, v and o to 8 / 11 bits.
    limit = 1e-3 if compute == torch.float32 else 5e-2
    if worst > limit:
        sys.exit("capture_trace: captured Q/K/V do not reproduce the attention output "
                 "(max relative error %.3g > %.3g)" % (worst, limit))

    for span in args.evidence:
        b, e = (int(x) for x in span.split(":"))
        if not 0 <= b < e <= tokens:
            sys.exit("capture_trace: evidence span %s is not inside [0, %d]" % (span, tokens))
    import transformers
    sidecar = {
        "model": name,
        "layers": layers,
        "q_heads": q.shape[1],
        "kv_heads": k.shape[1],
        "head_dim": head_dim,
        "tokens": tokens,
        "positions": positions[0].tolist(),
        "evidence": [[int(x) for x in s.split(":")] for s in args.evidence],
        "token_ids": ids[0].tolist(),
        "post_rope": True,
        "source": "tools/traces/capture_trace.py, transformers %s, torch %s, %s compute on %s"
                  % (transformers.__version__, torch.__version__, str(compute).split(".")[-1],
                     args.device),
        "check": {"max_rel_err_vs_model_attention": worst},
    }
    base = rope_base(model.config)
    if base is not None:
        sidecar["rope_base"] = base
    tensors = {"q": q, "k": k, "v": v}
    if not args.no_output:
        tensors["o"] = o
    written = write(args.out, tensors, sidecar, args.dtype, args.npy)
    print("capture_trace: %s: %d layers, %d/%d heads, head_dim %d, %d tokens, attention "
          "reproduced to %.2g; wrote %s" % (name, layers, q.shape[1], k.shape[1], head_dim,
                                           tokens, worst, ", ".join(written)))


if __name__ == "__main__":
    main(sys.argv[1:])
