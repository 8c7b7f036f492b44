/// The shared CUDA path of the score-and-keep methods (snapkv, pyramidkv, adakv, knorm, random,
/// tova, h2o, duo), the device twin of adapters/common/cpu/prompt_scores.hpp: a method supplies a
/// device scorer (a kernel that writes one float per (KV head, prompt token), higher = keep), the
/// rows every head is forced to keep (an observation window at the end of the prompt) and its
/// budget per head; the base keeps the forced rows and the best-scored ones with the radix top-k
/// (topk.cuh: ties to the earlier token, as the CPU's top_indices), device_cache_method gathers
/// them into the compacted cache, and decoding is the dense split-KV decode over it. Methods that
/// also evict while decoding (tova, h2o) use the helpers below: per-row softmax weights of a
/// decode query from the decode kernel's log-sum-exps, a per-head top-k and the compaction of
/// the cache. Scorers register by name (as the CPU's scorer_registrar), so that adakv can wrap any
/// of them. C++17-clean: compiled by nvcc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/common/cuda/cache_method_cuda.hpp"
#include "adapters/common/cuda/prompt_compress_kernels.cuh"

namespace attnbench::cuda {

/// What a device scorer sees: the prompt on the device and the problem's facts.
struct score_args {
  const element* q = nullptr;  // [tokens, q_heads, d], or null when prefill got no queries
  const element* k = nullptr;  // [tokens, kv_heads, d]
  const element* v = nullptr;  // [tokens, kv_heads, d]
  int tokens = 0;
  int forced = 0;           // forced_tail(tokens): the scored rows are [0, tokens - forced)
  std::int64_t budget = 0;  // rows per head the method keeps, forced ones included (< tokens)
  model_shape shape;
  float scale = 1.0f;
  int layer = 0;
  std::uint64_t seed = 0;
  cudaStream_t stream = nullptr;
  int sms = 1;
};

/// A prompt scoring rule on the device.
class device_scorer {
 public:
  virtual ~device_scorer() = default;
  /// Tokens per KV head the problem's layer keeps for the method's resolved budget (pyramidkv's
  /// schedule); default the budget itself.
  virtual std::int64_t layer_budget(const attention_problem& problem, std::int64_t budget) const {
    return budget;
  }
  /// Why the scorer cannot run a problem (no calibration), or nothing.
  virtual std::optional<std::string> unsupported_reason(const attention_problem&) const {
    return std::nullopt;
  }
  /// Reads what the scorer needs of the problem while it is prepared (calibration data is valid
  /// only then); called in plan.
  virtual void prepare(const attention_problem&) {}
  /// Rows at the end of a `tokens`-token prompt that every head keeps (default none).
  virtual int forced_tail(int tokens) const { return 0; }
  /// Writes scores [kv_heads, tokens - forced] (device, higher = keep) on a.stream.
  virtual void score(const score_args& a, float* scores) = 0;
};

using device_scorer_factory = std::function<std::unique_ptr<device_scorer>(const param_values&)>;

/// Registers a device scorer under its method's name (beside ATTNBENCH_REGISTER_METHOD).
struct device_scorer_registrar {
  device_scorer_registrar(const std::string& name, device_scorer_factory make);
};

/// The device scorer registered as `name`, built from `values` (an unknown name is a programmer
/// error).
std::unique_ptr<device_scorer> make_device_scorer(const std::string& name,
                                                  const param_values& values);

/// A CUDA adapter that compresses the prompt by a device scorer, once, in prefill; decoding
/// appends without eviction (the cache grows), as in prompt_score_method. Subclasses that evict
/// while decoding override the device_cache_method hooks and use the protected helpers.
class prompt_compress_method : public device_cache_method {
 public:
  prompt_compress_method(std::unique_ptr<device_scorer> scorer, param_values values)
      : m_scorer(std::move(scorer)), m_values(std::move(values)) {}

  /// The CUDA kernels' checks, then the scorer's.
  std::optional<std::string> unsupported_reason(const attention_problem& problem) const override;
  /// The cached positions the last query of the last attend call could see, per KV head.
  std::vector<std::vector<std::int64_t>> read_positions() const override { return m_read; }

 protected:
  /// budget / keep resolved over the prompt, then the scorer's layer budget.
  std::int64_t plan(const attention_problem& problem) override;
  /// Everything when the budget covers the prompt; the last `budget` rows when the forced rows
  /// fill it; else the scorer's scores, head_counts and the per-head top-k plus the forced rows.
  std::vector<std::vector<int>> select_prompt(const element* q, const element* k, const element* v,
                                              int tokens) override;
  /// Records the visible rows of the call's last query (read_positions), then decodes densely.
  std::pair<std::uint64_t, std::uint64_t> decode_query(const element* q, float* out,
                                                       const std::vector<int>& visible) override;

  /// Records the rows `visible` of the call's last query for read_positions (decode_query
  /// overrides call it before they evict).
  void note_read(const std::vector<int>& visible);
  /// held_rows of a method whose heads share the layer's budget (adaptive_counts): one head may
  /// keep up to kv_heads x budget rows of the prompt, then every decoded token.
  std::int64_t shared_budget_held_rows(const attention_problem& problem) const;
  /// Scored rows each head keeps besides the forced ones, given the prompt `a`, the device scores
  /// [kv_heads, n] (which it may rewrite: criticalkv re-ranks them) and the uniform share
  /// `per_head` (< n). Default: per_head for every head (adakv shares it).
  virtual std::vector<int> head_counts(const score_args& a, float* scores, int n, int per_head);
  /// adakv::allocate on the device: each head's top floor(alpha x per_head) rows (its safeguard)
  /// are masked out of a copy of the scores, one radix top-k over every head's scores together
  /// (flattened head-major: ties to the lower head, then the earlier row) takes the rest of the
  /// layer's per_head x kv_heads rows, and a head's count is its safeguard plus its rows there.
  std::vector<int> adaptive_counts(const float* scores, int n, int per_head, double alpha);

  /// The score_args of a prompt (q, k, v on the device).
  score_args prompt_args(const element* q, const element* k, const element* v, int tokens,
                         int forced) const;
  /// For each head h the top counts[h] of scores [kv_heads, stride] within [0, n[h]) (ties to the
  /// lower index), increasing, downloaded: [kv_heads][counts[h]].
  std::vector<std::vector<int>> top_rows(const float* scores, std::int64_t stride,
                                         const std::vector<int>& n, const std::vector<int>& counts);
  /// The cache's keys, for query_weights.
  key_rows<element> cache_keys() const;
  /// Log-sum-exps ([queries, q_heads], natural log) of `queries` query tokens q ([queries,
  /// q_heads, d]) over the cache, query i of head h seeing rows [0, before[h] + i + 1).
  void cache_lse(const element* q, int queries, const std::vector<int>& before, float* lse);
  /// query_weights over the cache's rows with host `before` (weights [kv_heads, capacity]).
  void cache_weights(const element* q, const float* lse, int queries,
                     const std::vector<int>& before, bool accumulate, float* weights);
  /// Keeps rows[h] (increasing indices into head h's cached rows) of every head: the cache is
  /// compacted on the device, m_positions follows, and each per-row float state [kv_heads,
  /// capacity] in `states` is compacted the same way.
  void keep_cache_rows(const std::vector<std::vector<int>>& rows,
                       const std::vector<device_buffer<float>*>& states);

  /// Per head h holding rows[h] rows: all of them when rows[h] <= count, else its newest
  /// protect[h] rows and the best (count - protect[h]) others by state ([kv_heads, capacity], ties
  /// to the older row), increasing (the CPU's keep_newest_and_best).
  std::vector<std::vector<int>> newest_and_best(const float* state, const std::vector<int>& rows,
                                                const std::vector<int>& protect, int count);
  /// state[h * capacity + first[h] + i] = value for i < count.
  void fill_state(float* state, const std::vector<int>& first, int count, float value);
  /// dst row r of head h ([kv_heads, capacity]) = src[h * src_stride + rows[h][r]].
  void gather_state(const float* src, std::int64_t src_stride,
                    const std::vector<std::vector<int>>& rows, float* dst);
  /// Rows each head holds now.
  std::vector<int> cached_rows() const;

  const param_values& values() const { return m_values; }
  device_scorer& scorer() { return *m_scorer; }

  int m_layer = 0;
  decode_workspace m_workspace;
  device_buffer<float> m_scores;  // [kv_heads, scored]: the prompt's scores
  device_buffer<float> m_lse;     // log-sum-exps of decode queries
  device_buffer<float> m_q_out;   // outputs of queries run only for their log-sum-exps

 private:
  std::unique_ptr<device_scorer> m_scorer;
  param_values m_values;
  std::vector<std::vector<std::int64_t>> m_read;
  device_buffer<int> m_n, m_count, m_top, m_before, m_rows_keep, m_keep_count, m_decode_lengths;
  device_buffer<int> m_safe, m_picked;
  device_buffer<float> m_masked;
  device_buffer<element> m_scratch_k, m_scratch_v;
  device_buffer<float> m_scratch_state;
};

/// Scratch of prompt_lse.
struct lse_scratch {
  device_buffer<int> table, lengths;
  device_buffer<float> out;
  decode_workspace workspace;
};

/// Log-sum-exps lse ([tokens - first, q_heads], natural log) of the prompt queries at positions
/// first .. tokens - 1, each over the prompt keys it sees (causal), from the split-KV decode kernel
/// run as a batch of one-query sequences over the token-major prompt (one-token pages and a shared
/// identity block table). Needs a.q.
void prompt_lse(const score_args& a, int first, lse_scratch& scratch, float* lse);

/// Observation-window votes (snapkv's, tova's with one query): votes[h * keys + t] for keys t <
/// keys (each seen by every query of the window: keys <= first + 1) = the softmax weights that
/// the prompt queries first .. tokens - 1 of head h's group put on key t, summed. lse as
/// prompt_lse writes it.
void window_votes(const score_args& a, int first, int keys, const float* lse, float* votes);

/// query_weights_kernel's launch: `before` on the device, rows up to most_rows per head.
void query_weights(const key_rows<element>& keys, const element* q, std::int64_t q_stride,
                   const float* lse, int queries, const model_shape& shape, const int* before,
                   int most_rows, float scale, bool accumulate, float* weights,
                   std::int64_t weights_stride, cudaStream_t stream);

/// Uploads host ints into a device buffer (resized as needed) and waits for the copy.
void upload_host_ints(const std::vector<int>& host, device_buffer<int>& dev, cudaStream_t stream);

/// method_info of a CUDA prompt-compression method whose scorer is registered as `name`.
method_info prompt_compress_cuda_info(std::string name, std::string paper, std::string summary,
                                      std::vector<param_def> params);

}  // namespace attnbench::cuda
