#include "adapters/common/cpu_only.hpp"

namespace attnbench {

const std::vector<cpu_only_method>& cpu_only_methods() {
  // One line each: what the method does that neither shared CUDA path (score-and-keep prompt
  // compression, per-query selection + sparse decode; docs/gpu.md) covers yet.
  static const std::vector<cpu_only_method> methods = {
      {"adaptive_head",
       "per-query Gaussian model of the far scores deciding dense or sparse per head: not ported"},
      {"anchor",
       "a prefill-side sparse pattern (anchor blocks per query block): the CUDA prefill kernel has "
       "no block-sparse mask"},
      {"block_sparse_icl",
       "a prefill-side group mask: the CUDA prefill kernel has no block-sparse mask"},
      {"cake", "layer budgets from entropy and variance across layers: not ported"},
      {"chunk",
       "wrapper: runs its inner method's CPU scorer per chunk; the CUDA adapters have no wrapper "
       "interface"},
      {"compactor", "sketched leverage scores (randomized projections): not ported"},
      {"decoding",
       "wrapper: re-scores the cache with its inner method's CPU scorer; the CUDA adapters have no "
       "wrapper interface"},
      {"dhsa",
       "adaptive chunking by adjacent-key similarity and upsampled chunk scores: not ported"},
      {"finch",
       "chunked prefill with per-chunk compression: the CUDA adapters prefill in one call"},
      {"found_in_the_middle",
       "rescales attention per position bucket inside the softmax: needs its own decode kernel"},
      {"gated", "an output gate on dense attention (a different attention operator): not ported"},
      {"gqa", "pools KV heads into groups (a different cache layout): not ported"},
      {"hyperattention", "sortLSH ordering and sampled columns: not ported"},
      {"infinite_hip", "three cached pruning stages with offloading: not ported"},
      {"key_rerotation",
       "wrapper: re-rotates its inner method's kept keys on the CPU; the CUDA adapters have no "
       "wrapper interface"},
      {"kvquant",
       "non-uniform codebooks fitted on calibration data: the CUDA quantized decode covers "
       "kv_quant's uniform codes only"},
      {"kvzip",
       "a reconstruction pass over the context (context replay) to score pairs: not ported"},
      {"lazy_eviction",
       "recurrence-interval bookkeeping of every token across decode steps: not ported"},
      {"ltri", "span indexing by mutual key affinity: not ported"},
      {"mqa", "pools all KV heads into one (a different cache layout): not ported"},
      {"parallel_context", "independently encoded prompt pieces (a different prefill): not ported"},
      {"per_layer",
       "wrapper: per-layer budgets for its inner method's CPU scorer; the CUDA adapters have no "
       "wrapper interface"},
      {"rectified",
       "pooled pseudo-rows appended to the base selector's rows: needs its own decode kernel"},
      {"routing", "k-means clustering of the keys: not ported"},
      {"shifted_groups",
       "per-query-head row sets (half the heads shifted): the shared decode reads one row set per "
       "KV head"},
      {"sigmoid", "unnormalized sigmoid attention (a different attention operator): not ported"},
      {"simlayerkv", "a per-layer switch between full and streaming caches: not ported"},
      {"strided_heads",
       "per-query-head strided row sets: the shared decode reads one row set per KV head"},
      {"tca", "calibrated per-head budgets with redundancy votes: not ported"},
      {"think", "drops key channels (a different cache layout): not ported"},
      {"token_retention",
       "retention scores fixed by the first queries, decayed with age, evicted at every step: not "
       "ported"},
  };
  return methods;
}

}  // namespace attnbench
