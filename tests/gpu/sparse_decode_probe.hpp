/// Host entry point of the [gpu] sparse decode tests (test_sparse_decode_cuda.cpp) into the
/// split-KV decode kernel of adapters/common/cuda/decode.cuh: builds a bf16 paged cache from float
/// inputs, runs decode over dense rows, per-head index lists or page lists, and returns float
/// outputs and log-sum-exps. Plain C++ (the kernel headers need nvcc): sparse_decode_probe.cu.
#pragma once

#include <string>
#include <vector>

namespace attnbench::test {


struct decode_probe {
  int batch = 1, q_heads = 8, kv_heads = 2, head_dim = 128;
  int tokens = 0;              // cached tokens per sequence
  int page_size = 16;          // tokens per physical page (a power of two)
  std::string mode = "dense";  // "dense", "indices" or "page_list"
  std::vector<int> lengths;    // [batch * kv_heads]: rows walked
  std::vector<int> rows;       // indices: tokens; page_list: logical pages; rows_stride apart
  int rows_stride = 0;
  std::vector<int> limits;  // page_list: [batch * kv_heads] visible tokens
  int list_page_shift = 0;  // page_list: log2 of rows per listed page
  int max_rows = 0;         // bound of lengths
  int sms = 132;            // handed to plan_decode
  bool one_split = false;   // overrides the plan: one CTA per pair writes the output itself
  std::vector<float> q;     // [batch, q_heads, head_dim]
  std::vector<float> k, v;  // [batch, tokens, kv_heads, head_dim]
};

struct decode_probe_result {
  int splits = 0;
  std::vector<float> first, last;  // outputs of the first and the last call [batch, q_heads, d]
  std::vector<float> lse;          // natural-log lse of the last call [batch, q_heads]
};

/// Rounds q, k, v to bf16, runs `calls` decode steps, returns their outputs.
decode_probe_result run_decode_probe(const decode_probe& p, int calls);

}  // namespace attnbench::test
