/// One rank's part of each context-parallel scheme (cp_schemes.hpp).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapters/common/context_parallel/ring_step_cuda.cuh"
#include "adapters/common/cuda/cuda_common.cuh"
#include "adapters/common/cuda/kernels.hpp"
#include "adapters/common/cuda/topk.cuh"
#include "harness/error.hpp"
#include "suites/cp/cp_schemes.hpp"

#define CP_NCCL(CALL)                                                                        \
  do {                                                                                       \
    const ncclResult_t cp_rc_ = (CALL);                                                      \
    ATTNBENCH_CHECK(cp_rc_ == ncclSuccess, internal,                                         \
                    #CALL << " failed: " << ncclGetErrorString(cp_rc_));                     \
  } while (0)

namespace attnbench::cp {

namespace {

using bf16 = __nv_bfloat16;
using detail::ring_t;

// Seeds and amplitudes of the inputs: Q and K uniform in [-2, 2] (logits with a standard
// deviation of about 1.3 at head_dim 128, so attention is neither uniform nor one-hot), V in
// [-1, 1].
constexpr float qk_amplitude = 2.0f, v_amplitude = 1.0f;
std::uint32_t q_seed(const cp_shape& s) { return s.seed * 8u + 1u; }
std::uint32_t k_seed(const cp_shape& s) { return s.seed * 8u + 2u; }
std::uint32_t v_seed(const cp_shape& s) { return s.seed * 8u + 3u; }

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
ncclComm_t as_comm(void* c) { return static_cast<ncclComm_t>(c); }

using event = detail::cuda_event;

float elapsed(const event& a, const event& b) { return detail::elapsed_ms(a, b); }

// Rows [begin, begin + count) of a token-major tensor of `row` elements per token, into `dst`.
void fill_rows(bf16* dst, std::int64_t begin, std::int64_t count, std::int64_t row,
               std::uint32_t seed, float amplitude, cudaStream_t st) {
  cuda::fill_hash(dst, static_cast<std::size_t>(count * row), seed, amplitude, st,
                  static_cast<std::uint64_t>(begin * row));
}

// A rank's local rows (its chunks, concatenated) of a token-major tensor.
void fill_local(bf16* dst, const sequence_partition& part, int rank, std::int64_t row,
                std::uint32_t seed, float amplitude, cudaStream_t st) {
  std::int64_t at = 0;
  for (int c : part.rank_chunks[static_cast<std::size_t>(rank)]) {
    const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
    fill_rows(dst + at * row, ch.begin, ch.length, row, seed, amplitude, st);
    at += ch.length;
  }
}

// ---- The fp32 reference: one (query row, head) per task, keys made from the hash. ----

// Query element c is hash(q_index + c); key j's element c is hash(k_base + key(j) * key_stride +
// c), V's likewise; key(j) = keys ? keys[j] : j for j < visible.
struct ref_task {
  std::int64_t q_index = 0;
  std::int64_t k_base = 0;
  std::int64_t key_stride = 0;
  int visible = 0;
  const int* keys = nullptr;  // device, or null for keys 0 .. visible-1
};

struct ref_seeds {
  std::uint32_t q, k, v;
  float scale;
};

__device__ __forceinline__ float rounded(std::uint64_t i, std::uint32_t seed, float amplitude) {
  return __bfloat162float(__float2bfloat16(cuda::hash_uniform(i, seed, amplitude)));
}

// One CTA per task: logits into scratch (pass 1), their max and the sum of exponentials, then
// one thread per channel sums p_j v_j in double.
__global__ void reference_kernel(const ref_task* tasks, ref_seeds seeds, int d, float* scratch,
                                 std::int64_t scratch_stride, float* out) {
  const ref_task t = tasks[blockIdx.x];
  float* logit = scratch + blockIdx.x * scratch_stride;
  __shared__ float q[128];
  __shared__ float red[256];
  for (int c = threadIdx.x; c < d; c += blockDim.x)
    q[c] = rounded(static_cast<std::uint64_t>(t.q_index + c), seeds.q, qk_amplitude);
  __syncthreads();
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < t.visible; j += blockDim.x) {
    const std::int64_t key = t.keys ? t.keys[j] : j;
    const std::int64_t base = t.k_base + key * t.key_stride;
    float acc = 0;
    for (int c = 0; c < d; ++c)
      acc += q[c] * rounded(static_cast<std::uint64_t>(base + c), seeds.k, qk_amplitude);
    acc *= seeds.scale;
    logit[j] = acc;
    mx = fmaxf(mx, acc);
  }
  red[threadIdx.x] = mx;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + w]);
    __syncthreads();
  }
  mx = red[0];
  __syncthreads();
  float sum = 0;
  for (int j = threadIdx.x; j < t.visible; j += blockDim.x) {
    const float p = expf(logit[j] - mx);
    logit[j] = p;
    sum += p;
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  const float total = red[0];
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double acc = 0;
    for (int j = 0; j < t.visible; ++j) {
      const std::int64_t key = t.keys ? t.keys[j] : j;
      acc += static_cast<double>(logit[j]) *
             rounded(static_cast<std::uint64_t>(t.k_base + key * t.key_stride + c), seeds.v,
                     v_amplitude);
    }
    out[static_cast<std::int64_t>(blockIdx.x) * d + c] = static_cast<float>(acc / total);
  }
}

// Adds sum (out - ref)^2 and sum ref^2 over the tasks to m: `rows` are the device bf16 output
// rows of the tasks (head_dim elements each).
void check_rows(const std::vector<ref_task>& tasks, const std::vector<const bf16*>& rows,
                const cp_shape& s, cp_measure& m) {
  if (tasks.empty()) return;
  const int d = s.head_dim;
  int longest = 1;
  for (const ref_task& t : tasks) longest = std::max(longest, t.visible);
  cuda::device_buffer<ref_task> dev_tasks(tasks.size());
  ATTNBENCH_CUDA(cudaMemcpy(dev_tasks.data(), tasks.data(), dev_tasks.bytes(),
                            cudaMemcpyHostToDevice));
  // Tasks in batches whose logits fit in 1 GiB of scratch.
  const std::size_t per_batch = std::max<std::size_t>(
      1, (std::size_t{1} << 28) / static_cast<std::size_t>(longest));
  cuda::device_buffer<float> scratch(std::min(per_batch, tasks.size()) *
                                     static_cast<std::size_t>(longest));
  cuda::device_buffer<float> ref(tasks.size() * static_cast<std::size_t>(d));
  const ref_seeds seeds{q_seed(s), k_seed(s), v_seed(s), 1.0f / std::sqrt(static_cast<float>(d))};
  for (std::size_t first = 0; first < tasks.size(); first += per_batch) {
    const std::size_t n = std::min(per_batch, tasks.size() - first);
    reference_kernel<<<static_cast<unsigned>(n), 256>>>(dev_tasks.data() + first, seeds, d,
                                                        scratch.data(), longest,
                                                        ref.data() + first * d);
    ATTNBENCH_CUDA_LAUNCHED();
  }
  std::vector<float> host_ref(ref.size());
  ATTNBENCH_CUDA(cudaMemcpy(host_ref.data(), ref.data(), ref.bytes(), cudaMemcpyDeviceToHost));
  std::vector<bf16> row(static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    ATTNBENCH_CUDA(cudaMemcpy(row.data(), rows[i], d * sizeof(bf16), cudaMemcpyDeviceToHost));
    for (int c = 0; c < d; ++c) {
      const double r = host_ref[i * d + static_cast<std::size_t>(c)];
      const double x = __bfloat162float(row[static_cast<std::size_t>(c)]);
      m.err_num += (x - r) * (x - r);
      m.err_den += r * r;
    }
  }
}

// Reference tasks of prefill query row `token` (every query head) of a sequence of s.tokens,
// with the output rows they check: `token_out` holds the token's [q_heads][head_dim] output.
void prefill_checks(const cp_shape& s, int token, const bf16* token_out,
                    std::vector<ref_task>& tasks, std::vector<const bf16*>& rows) {
  const int group = s.q_heads / s.kv_heads;
  for (int h = 0; h < s.q_heads; ++h) {
    ref_task t;
    t.q_index = (static_cast<std::int64_t>(token) * s.q_heads + h) * s.head_dim;
    t.k_base = static_cast<std::int64_t>(h / group) * s.head_dim;
    t.key_stride = static_cast<std::int64_t>(s.kv_heads) * s.head_dim;
    t.visible = s.causal ? token + 1 : s.tokens;
    tasks.push_back(t);
    rows.push_back(token_out + static_cast<std::int64_t>(h) * s.head_dim);
  }
}

// Q, K and V rows [begin, begin + count) of the sequence (token-major) into q, k, v.
void fill_qkv(const cp_shape& s, std::int64_t begin, std::int64_t count, bf16* q, bf16* k,
              bf16* v, cudaStream_t st) {
  const std::int64_t q_row = static_cast<std::int64_t>(s.q_heads) * s.head_dim;
  const std::int64_t kv_row = static_cast<std::int64_t>(s.kv_heads) * s.head_dim;
  fill_rows(q, begin, count, q_row, q_seed(s), qk_amplitude, st);
  fill_rows(k, begin, count, kv_row, k_seed(s), qk_amplitude, st);
  fill_rows(v, begin, count, kv_row, v_seed(s), v_amplitude, st);
}

// Times `body` (enqueued on st) `reps` times after one warm-up, each from a host barrier.
template <class F>
std::vector<double> time_reps(process_group* group, int reps, cudaStream_t st, F body) {
  std::vector<double> ms;
  event a, b;
  for (int i = 0; i <= reps; ++i) {
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    if (group) group->barrier();
    a.record(st);
    body();
    b.record(st);
    ATTNBENCH_CUDA(cudaEventSynchronize(b.e));
    if (i > 0) ms.push_back(elapsed(a, b));
  }
  return ms;
}

void check_shape(const cp_shape& s) {
  ATTNBENCH_CHECK(s.head_dim == 64 || s.head_dim == 128, bad_input,
                  "cp: head_dim must be 64 or 128, not " << s.head_dim);
  ATTNBENCH_CHECK(s.q_heads >= 1 && s.kv_heads >= 1 && s.q_heads % s.kv_heads == 0, bad_input,
                  "cp: q_heads (" << s.q_heads << ") must be a multiple of kv_heads ("
                                  << s.kv_heads << ")");
  ATTNBENCH_CHECK(s.tokens >= 1, bad_input, "cp: length must be at least 1");
}

// Runs `alloc` (the scheme's device allocations, before any transfer) on every rank, then agrees:
// when any rank ran out of memory, every rank throws out_of_memory together, so no rank waits in
// NCCL for one that left.
template <class F>
void allocate_together(process_group& g, F alloc) {
  std::string failed;
  try {
    alloc();
  } catch (const error& e) {
    if (e.id() != error_id::out_of_memory) throw;
    failed = e.what();
  }
  const bool any = g.max(failed.empty() ? 0.0 : 1.0) > 0;
  ATTNBENCH_CHECK(!any, out_of_memory,
                  "cp: out of GPU memory on " << (failed.empty() ? "another rank" : "this rank")
                                              << (failed.empty() ? "" : ": " + failed));
}

}  // namespace

// ---- Device and communicator. ----

cp_device::cp_device(process_group& group) : m_group(group) {
  int count = 0;
  ATTNBENCH_CUDA(cudaGetDeviceCount(&count));
  ATTNBENCH_CHECK(count >= 1, unsupported, "cp: no CUDA device");
  // One GPU per rank: NCCL refuses two ranks of a communicator on one device.
  ATTNBENCH_CHECK(group.local_rank() < count, bad_input,
                  "cp: rank " << group.rank() << " needs GPU " << group.local_rank() << " of its host, which has "
                              << count << " (one GPU per rank)");
  m_device = group.local_rank();
  ATTNBENCH_CUDA(cudaSetDevice(m_device));
  ncclUniqueId id;
  if (group.rank() == 0) CP_NCCL(ncclGetUniqueId(&id));
  group.broadcast(&id, sizeof(id), 0);
  ncclComm_t comm = nullptr;
  CP_NCCL(ncclCommInitRank(&comm, group.size(), id, group.rank()));
  m_comm = comm;
  cudaStream_t a = nullptr, b = nullptr;
  ATTNBENCH_CUDA(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  ATTNBENCH_CUDA(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  m_stream = a;
  m_transfer = b;
}

cp_device::~cp_device() {
  cudaSetDevice(m_device);
  cudaDeviceSynchronize();
  if (m_comm) ncclCommDestroy(as_comm(m_comm));
  if (m_stream) cudaStreamDestroy(as_stream(m_stream));
  if (m_transfer) cudaStreamDestroy(as_stream(m_transfer));
}

std::string cp_device::nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  // NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch since 2.9.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

// ---- Ring. ----

cp_measure run_ring(cp_device& dev, const cp_shape& s, layout kind, int reps,
                    const std::vector<int>& ref_tokens) {
  check_shape(s);
  process_group& g = dev.group();
  const int P = g.size(), r = g.rank();
  const sequence_partition part = partition_sequence(s.tokens, P, kind);
  const detail::ring_dims dims = detail::make_ring_dims(part, s.q_heads, s.kv_heads, s.head_dim);
  const std::int64_t kv_row = dims.kv_row();
  const cudaStream_t st = as_stream(dev.stream()), tx = as_stream(dev.transfer_stream());
  detail::ring_rank_buffers b;
  cuda::device_buffer<bf16> local_k, out;
  allocate_together(g, [&] {
    b.allocate(dims, part.rank_tokens(r));
    local_k.resize(static_cast<std::size_t>(std::max(dims.max_tokens, 1)) * 2 * kv_row);
    out.resize(static_cast<std::size_t>(std::max(part.rank_tokens(r), 1)) * dims.q_row());
  });
  fill_local(b.q.data(), part, r, dims.q_row(), q_seed(s), qk_amplitude, st);
  fill_local(local_k.data(), part, r, kv_row, k_seed(s), qk_amplitude, st);
  fill_local(local_k.data() + dims.max_tokens * kv_row, part, r, kv_row, v_seed(s), v_amplitude,
             st);
  const std::vector<block_pair> pairs = ring_block_pairs(part, r, s.causal);
  const std::size_t shard_elems = static_cast<std::size_t>(dims.max_tokens) * 2 * kv_row;
  std::vector<event> c0(static_cast<std::size_t>(P)), c1(c0.size()), t0(c0.size()),
      t1(c0.size());
  ncclComm_t comm = as_comm(dev.nccl());

  auto forward = [&] {
    // The own shard into buffer 0 (a device copy: the ring's buffers are overwritten by the
    // passes of earlier repetitions), the running result reset.
    ATTNBENCH_CUDA(cudaMemcpyAsync(b.kv[0].data(), local_k.data(), shard_elems * sizeof(bf16),
                                   cudaMemcpyDeviceToDevice, st));
    b.reset(st);
    // The transfer stream starts after those.
    c1[0].record(st);
    ATTNBENCH_CUDA(cudaStreamWaitEvent(tx, c1[0].e));
    for (int step = 0; step < P; ++step) {
      const ring_step plan = ring_schedule(r, step, P);
      const int hold = step % 2;
      if (step > 0) ATTNBENCH_CUDA(cudaStreamWaitEvent(st, t1[static_cast<std::size_t>(step - 1)].e));
      c0[static_cast<std::size_t>(step)].record(st);
      detail::attend_held_shard(part, pairs, r, step, plan.kv_source, b.kv[hold].data(), dims, b,
                                st);
      c1[static_cast<std::size_t>(step)].record(st);
      // Receive the next shard into the other buffer once the previous step's attention has
      // read it; send the held one (read-only here) at the same time.
      if (step > 0) ATTNBENCH_CUDA(cudaStreamWaitEvent(tx, c1[static_cast<std::size_t>(step - 1)].e));
      t0[static_cast<std::size_t>(step)].record(tx);
      if (plan.transfers) {
        CP_NCCL(ncclGroupStart());
        CP_NCCL(ncclSend(b.kv[hold].data(), shard_elems, ncclBfloat16, plan.send_to, comm, tx));
        CP_NCCL(ncclRecv(b.kv[1 - hold].data(), shard_elems, ncclBfloat16, plan.recv_from, comm,
                         tx));
        CP_NCCL(ncclGroupEnd());
      }
      t1[static_cast<std::size_t>(step)].record(tx);
    }
    ATTNBENCH_CUDA(cudaStreamWaitEvent(st, t1[static_cast<std::size_t>(P - 1)].e));
    detail::store_bf16(out.data(), b.acc.data(),
                       static_cast<std::int64_t>(part.rank_tokens(r)) * dims.q_row(), st);
  };
  cp_measure m;
  m.ms = time_reps(&g, reps, st, forward);
  for (int step = 0; step < P; ++step) {
    m.compute_ms.push_back(elapsed(c0[static_cast<std::size_t>(step)], c1[static_cast<std::size_t>(step)]));
    m.comm_ms.push_back(elapsed(t0[static_cast<std::size_t>(step)], t1[static_cast<std::size_t>(step)]));
  }
  // The reference rows this rank holds.
  std::vector<ref_task> tasks;
  std::vector<const bf16*> rows;
  for (int token : ref_tokens) {
    int local = 0;
    for (int c : part.rank_chunks[static_cast<std::size_t>(r)]) {
      const chunk& ch = part.chunks[static_cast<std::size_t>(c)];
      if (token >= ch.begin && token < ch.begin + ch.length)
        prefill_checks(s, token, out.data() + (local + token - ch.begin) * dims.q_row(), tasks,
                       rows);
      local += ch.length;
    }
  }
  check_rows(tasks, rows, s, m);
  return m;
}

// ---- Ulysses. ----

cp_measure run_ulysses(cp_device& dev, const cp_shape& s, int reps,
                       const std::vector<int>& ref_tokens) {
  check_shape(s);
  process_group& g = dev.group();
  const int P = g.size(), r = g.rank(), d = s.head_dim;
  const sequence_partition part = partition_sequence(s.tokens, P, layout::contiguous);
  const ulysses_plan plan = plan_ulysses(s.q_heads, s.kv_heads, P);
  const head_range qh = plan.q[static_cast<std::size_t>(r)];
  const head_range kh = plan.kv[static_cast<std::size_t>(r)];
  const int group = s.q_heads / s.kv_heads;
  // The prefill kernel maps local query head i to local KV head i / (q / kv): the rank's heads
  // must keep that map (whole GQA groups, or query heads of one KV head).
  bool maps = qh.count > 0 && kh.count > 0 && qh.count % kh.count == 0;
  for (int i = 0; maps && i < qh.count; ++i)
    maps = (qh.begin + i) / group - kh.begin == i / (qh.count / kh.count);
  ATTNBENCH_CHECK(maps, unsupported,
                  "cp: Ulysses over " << P << " GPUs splits " << s.q_heads << " query heads ("
                                      << s.kv_heads << " KV heads) across GQA groups");
  const cudaStream_t st = as_stream(dev.stream());
  ncclComm_t comm = as_comm(dev.nccl());
  const std::int64_t n_local = part.rank_tokens(r), n = s.tokens;
  const chunk mine = part.chunks[static_cast<std::size_t>(r)];
  // Sequence shards; head shards over the whole sequence; the packed blocks of the exchanges
  // (every exchange moves at most q_heads heads of my rows: a KV head held by several ranks is
  // sent to each, and no rank holds more KV heads than query heads).
  cuda::device_buffer<bf16> q, k, v, o, hq, hk, hv, ho, pack;
  allocate_together(g, [&] {
    q.resize(std::max<std::size_t>(1, n_local * s.q_heads * d));
    k.resize(std::max<std::size_t>(1, n_local * s.kv_heads * d));
    v.resize(k.size());
    o.resize(q.size());
    hq.resize(static_cast<std::size_t>(n) * qh.count * d);
    hk.resize(static_cast<std::size_t>(n) * kh.count * d);
    hv.resize(hk.size());
    ho.resize(hq.size());
    pack.resize(std::max<std::size_t>(1, n_local * s.q_heads * d));
  });
  fill_qkv(s, mine.begin, n_local, q.data(), k.data(), v.data(), st);
  event e0, e1, e2, e3;

  // Forward exchange of one tensor: heads `heads[j]` of my rows to rank j (packed, 2D copies),
  // rank j's rows of my heads into `dst` [n][mine.count][d] at rank j's token offset.
  auto to_heads = [&](const bf16* src, int row_heads, const std::vector<head_range>& heads,
                      bf16* dst, int my_count, bf16* packed) {
    std::int64_t at = 0;
    std::vector<std::int64_t> offset(static_cast<std::size_t>(P));
    for (int j = 0; j < P; ++j) {
      const head_range hr = heads[static_cast<std::size_t>(j)];
      offset[static_cast<std::size_t>(j)] = at;
      if (n_local > 0 && hr.count > 0)
        ATTNBENCH_CUDA(cudaMemcpy2DAsync(packed + at, hr.count * d * sizeof(bf16),
                                         src + static_cast<std::int64_t>(hr.begin) * d,
                                         static_cast<std::size_t>(row_heads) * d * sizeof(bf16),
                                         hr.count * d * sizeof(bf16), n_local,
                                         cudaMemcpyDeviceToDevice, st));
      at += n_local * hr.count * d;
    }
    CP_NCCL(ncclGroupStart());
    for (int j = 0; j < P; ++j) {
      const head_range hr = heads[static_cast<std::size_t>(j)];
      const chunk cj = part.chunks[static_cast<std::size_t>(j)];
      CP_NCCL(ncclSend(packed + offset[static_cast<std::size_t>(j)],
                       static_cast<std::size_t>(n_local) * hr.count * d, ncclBfloat16, j, comm,
                       st));
      CP_NCCL(ncclRecv(dst + static_cast<std::int64_t>(cj.begin) * my_count * d,
                       static_cast<std::size_t>(cj.length) * my_count * d, ncclBfloat16, j, comm,
                       st));
    }
    CP_NCCL(ncclGroupEnd());
  };

  auto forward = [&] {
    e0.record(st);
    to_heads(q.data(), s.q_heads, plan.q, hq.data(), qh.count, pack.data());
    to_heads(k.data(), s.kv_heads, plan.kv, hk.data(), kh.count, pack.data());
    to_heads(v.data(), s.kv_heads, plan.kv, hv.data(), kh.count, pack.data());
    e1.record(st);
    cuda::prefill_args a = cuda::token_major_prefill(
        hq.data(), hk.data(), hv.data(), ho.data(), 1, static_cast<int>(n), static_cast<int>(n),
        qh.count, kh.count, d, 1.0f / std::sqrt(static_cast<float>(d)), s.causal);
    cuda::flash_prefill<bf16>(a, st);
    e2.record(st);
    // Back: my heads of rank j's rows to rank j; rank j's heads of my rows into the pack, then
    // into their columns of o.
    CP_NCCL(ncclGroupStart());
    std::int64_t at = 0;
    for (int j = 0; j < P; ++j) {
      const head_range hr = plan.q[static_cast<std::size_t>(j)];
      const chunk cj = part.chunks[static_cast<std::size_t>(j)];
      CP_NCCL(ncclSend(ho.data() + static_cast<std::int64_t>(cj.begin) * qh.count * d,
                       static_cast<std::size_t>(cj.length) * qh.count * d, ncclBfloat16, j, comm,
                       st));
      CP_NCCL(ncclRecv(pack.data() + at, static_cast<std::size_t>(n_local) * hr.count * d,
                       ncclBfloat16, j, comm, st));
      at += n_local * hr.count * d;
    }
    CP_NCCL(ncclGroupEnd());
    at = 0;
    for (int j = 0; j < P; ++j) {
      const head_range hr = plan.q[static_cast<std::size_t>(j)];
      if (n_local > 0 && hr.count > 0)
        ATTNBENCH_CUDA(cudaMemcpy2DAsync(o.data() + static_cast<std::int64_t>(hr.begin) * d,
                                         static_cast<std::size_t>(s.q_heads) * d * sizeof(bf16),
                                         pack.data() + at, hr.count * d * sizeof(bf16),
                                         hr.count * d * sizeof(bf16), n_local,
                                         cudaMemcpyDeviceToDevice, st));
      at += n_local * hr.count * d;
    }
    e3.record(st);
  };
  cp_measure m;
  m.ms = time_reps(&g, reps, st, forward);
  m.compute_ms = {elapsed(e1, e2)};
  m.comm_ms = {elapsed(e0, e1) + elapsed(e2, e3)};
  std::vector<ref_task> tasks;
  std::vector<const bf16*> rows;
  for (int token : ref_tokens)
    if (token >= mine.begin && token < mine.begin + mine.length)
      prefill_checks(s, token,
                     o.data() + static_cast<std::int64_t>(token - mine.begin) * s.q_heads * d,
                     tasks, rows);
  check_rows(tasks, rows, s, m);
  return m;
}

// ---- Decode over a sharded (and maybe compressed) cache. ----

namespace {

// Cache rows [first, first + rows) of every (sequence, KV head) in the layout of a one-page-per-
// sequence paged_kv: [batch][kv_heads][page][d]; element (b, h, t, c) holds the hash of its
// global index ((b * tokens + t) * kv_heads + h) * d + c.
__global__ void fill_cache_kernel(bf16* out, int batch, int kv_heads, int page, int rows, int d,
                                  std::int64_t first, std::int64_t tokens, std::uint32_t seed,
                                  float amplitude) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * kv_heads * rows * d;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % d);
    const std::int64_t t = (i / d) % rows;
    const int h = static_cast<int>((i / d / rows) % kv_heads);
    const int b = static_cast<int>(i / d / rows / kv_heads);
    const std::int64_t global = ((b * tokens + first + t) * kv_heads + h) * d + c;
    out[((static_cast<std::int64_t>(b) * kv_heads + h) * page + t) * d + c] =
        __float2bfloat16(cuda::hash_uniform(static_cast<std::uint64_t>(global), seed, amplitude));
  }
}

// KNorm's score of every cached row: minus its key's L2 norm (the smallest norms are kept).
// One warp per row.
__global__ void key_norm_scores_kernel(const bf16* k, int segments, int page, int rows, int d,
                                       float* scores) {
  const std::int64_t row = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<std::int64_t>(segments) * rows) return;
  const std::int64_t seg = row / rows, t = row % rows;
  const bf16* x = k + (seg * page + t) * d;
  float acc = 0;
  for (int c = lane; c < d; c += 32) {
    const float y = __bfloat162float(x[c]);
    acc += y * y;
  }
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) scores[row] = -sqrtf(acc);
}

// Adds `offset` to entries [0, count) of each of `segments` lists `stride` apart.
__global__ void add_offset_kernel(int* rows, int segments, std::int64_t stride, int count,
                                  int offset) {
  const std::int64_t n = static_cast<std::int64_t>(segments) * count;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    rows[(i / count) * stride + i % count] += offset;
}

// Merges P gathered partials (out [P][rows][d] float, lse [P][rows] natural log) into bf16 out
// [rows][d]. One CTA of d threads per row.
__global__ void merge_gathered_kernel(const float* parts, const float* lses, int P,
                                      std::int64_t rows, int d, bf16* out) {
  const std::int64_t row = blockIdx.x;
  float m = -INFINITY;
  for (int p = 0; p < P; ++p) m = fmaxf(m, lses[p * rows + row]);
  float num = 0, den = 0;
  if (m != -INFINITY)
    for (int p = 0; p < P; ++p) {
      const float w = expf(lses[p * rows + row] - m);
      num += w * parts[(p * rows + row) * d + threadIdx.x];
      den += w;
    }
  out[row * d + threadIdx.x] = __float2bfloat16(den > 0 ? num / den : 0.0f);
}

// A cache of `rows` rows starting at global token `first` for every sequence, with what the
// decode kernel needs: one page per sequence, lengths, and (keep < 1) the kept rows.
struct shard_cache {
  int rows = 0, page = 1, batch = 1, kv_heads = 1, d = 128;
  cuda::device_buffer<bf16> k, v;
  cuda::device_buffer<int> table, lengths, kept;
  int kept_per_segment = 0;  // 0: every row

  shard_cache(const cp_shape& s, std::int64_t first, int count, cudaStream_t st)
      : rows(count), batch(s.batch), kv_heads(s.kv_heads), d(s.head_dim) {
    while (page < std::max(rows, 1)) page *= 2;
    const std::size_t elems = static_cast<std::size_t>(batch) * kv_heads * page * d;
    k.resize(elems);
    v.resize(elems);
    const std::int64_t n = static_cast<std::int64_t>(batch) * kv_heads * rows * d;
    const unsigned blocks = detail::blocks_for(n);
    fill_cache_kernel<<<blocks, 256, 0, st>>>(k.data(), batch, kv_heads, page, rows, d, first,
                                              s.tokens, k_seed(s), qk_amplitude);
    fill_cache_kernel<<<blocks, 256, 0, st>>>(v.data(), batch, kv_heads, page, rows, d, first,
                                              s.tokens, v_seed(s), v_amplitude);
    ATTNBENCH_CUDA_LAUNCHED();
    std::vector<int> t(static_cast<std::size_t>(batch));
    for (int b = 0; b < batch; ++b) t[static_cast<std::size_t>(b)] = b;
    table.resize(t.size());
    ATTNBENCH_CUDA(cudaMemcpy(table.data(), t.data(), table.bytes(), cudaMemcpyHostToDevice));
    set_lengths(rows);
  }
  void set_lengths(int n) {
    std::vector<int> len(static_cast<std::size_t>(batch) * kv_heads, n);
    lengths.resize(len.size());
    ATTNBENCH_CUDA(cudaMemcpy(lengths.data(), len.data(), lengths.bytes(), cudaMemcpyHostToDevice));
  }
  /// Keeps, per (sequence, KV head), the `counts[i]` rows of smallest key norm among rows
  /// [begins[i], begins[i] + sizes[i]) for each i (one range per shard of a split), as one
  /// increasing list.
  void keep_smallest_norms(const std::vector<int>& begins, const std::vector<int>& sizes,
                           const std::vector<int>& counts, cudaStream_t st) {
    const int segments = batch * kv_heads;
    int total = 0;
    for (int c : counts) total += c;
    kept_per_segment = total;
    kept.resize(static_cast<std::size_t>(segments) * std::max(total, 1));
    cuda::device_buffer<float> scores(static_cast<std::size_t>(segments) * rows);
    key_norm_scores_kernel<<<detail::blocks_for(static_cast<std::int64_t>(segments) * rows * 32),
                             256, 0, st>>>(k.data(), segments, page, rows, d, scores.data());
    ATTNBENCH_CUDA_LAUNCHED();
    cuda::device_buffer<int> n_dev(static_cast<std::size_t>(segments)),
        c_dev(static_cast<std::size_t>(segments));
    int at = 0;
    for (std::size_t i = 0; i < begins.size(); ++i) {
      if (counts[i] == 0) continue;
      std::vector<int> n_host(static_cast<std::size_t>(segments), sizes[i]),
          c_host(static_cast<std::size_t>(segments), counts[i]);
      ATTNBENCH_CUDA(cudaMemcpy(n_dev.data(), n_host.data(), n_dev.bytes(), cudaMemcpyHostToDevice));
      ATTNBENCH_CUDA(cudaMemcpy(c_dev.data(), c_host.data(), c_dev.bytes(), cudaMemcpyHostToDevice));
      cuda::top_k(scores.data() + begins[i], rows, n_dev.data(), c_dev.data(), segments,
                  kept.data() + at, total, st);
      // top_k's indices are relative to the range: every segment's block of this range.
      add_offset_kernel<<<detail::blocks_for(static_cast<std::int64_t>(segments) * counts[i]),
                          256, 0, st>>>(kept.data() + at, segments, total, counts[i], begins[i]);
      ATTNBENCH_CUDA_LAUNCHED();
      ATTNBENCH_CUDA(cudaStreamSynchronize(st));
      at += counts[i];
    }
    set_lengths(total);
  }
  cuda::decode_args<bf16> args(const cp_shape& s, const bf16* q) const {
    cuda::decode_args<bf16> a;
    a.kv.k = k.data();
    a.kv.v = v.data();
    a.kv.block_table = table.data();
    a.kv.max_pages = 1;
    a.kv.page_shift = cuda::log2_exact(page);
    a.kv.kv_heads = kv_heads;
    a.kv.head_dim = d;
    a.q = q;
    a.q_batch_stride = static_cast<std::int64_t>(s.q_heads) * d;
    a.batch = batch;
    a.q_heads = s.q_heads;
    a.lengths = lengths.data();
    a.max_rows = kept_per_segment > 0 ? kept_per_segment : rows;
    if (kept_per_segment > 0) {
      a.rows = kept.data();
      a.rows_stride = kept_per_segment;
    }
    a.scale = 1.0f / std::sqrt(static_cast<float>(d));
    return a;
  }
  cuda::row_mode mode() const {
    return kept_per_segment > 0 ? cuda::row_mode::indices : cuda::row_mode::dense;
  }
};

// Checks the decode output `out` ([batch][q_heads][head_dim]) of every (sequence, query head)
// against the reference over the whole cache, or over the kept rows (kept: [segments]
// [per_segment] global tokens on the device), adding to m's error sums.
void check_decode(const cp_shape& s, const int* kept, int per_segment, const bf16* out,
                  cp_measure& m) {
  std::vector<ref_task> tasks;
  std::vector<const bf16*> rows;
  const int group = s.q_heads / s.kv_heads;
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.q_heads; ++h) {
      ref_task t;
      // The query of (b, h) is element (b * q_heads + h) * d of the seed's Q.
      t.q_index = (static_cast<std::int64_t>(b) * s.q_heads + h) * s.head_dim;
      const int kvh = h / group;
      t.k_base = (static_cast<std::int64_t>(b) * s.tokens * s.kv_heads + kvh) * s.head_dim;
      t.key_stride = static_cast<std::int64_t>(s.kv_heads) * s.head_dim;
      t.visible = kept ? per_segment : s.tokens;
      if (kept) t.keys = kept + (static_cast<std::int64_t>(b) * s.kv_heads + kvh) * per_segment;
      tasks.push_back(t);
      rows.push_back(out + (static_cast<std::int64_t>(b) * s.q_heads + h) * s.head_dim);
    }
  check_rows(tasks, rows, s, m);
}

// The shard ranges of a cache of s.tokens rows cut contiguously over P ranks, and each one's
// share of the budget.
struct decode_split {
  std::vector<int> begins, sizes, counts;
};
decode_split split_cache(const cp_shape& s, int P) {
  const sequence_partition part = partition_sequence(s.tokens, P, layout::contiguous);
  decode_split out;
  for (const chunk& c : part.chunks) {
    out.begins.push_back(c.begin);
    out.sizes.push_back(c.length);
  }
  const int budget = static_cast<int>(std::llround(s.keep * s.tokens));
  out.counts = s.keep < 1.0 ? split_budget(budget, out.sizes) : out.sizes;
  return out;
}

void check_decode_shape(const cp_shape& s) {
  check_shape(s);
  ATTNBENCH_CHECK(s.batch >= 1, bad_input, "cp: batch must be at least 1, not " << s.batch);
  ATTNBENCH_CHECK(s.keep > 0.0 && s.keep <= 1.0, bad_input,
                  "cp: keep must be in (0, 1], not " << s.keep);
}

}  // namespace

cp_measure run_sharded_decode(cp_device& dev, const cp_shape& s, int reps) {
  check_decode_shape(s);
  process_group& g = dev.group();
  const int P = g.size(), r = g.rank(), d = s.head_dim;
  const cudaStream_t st = as_stream(dev.stream());
  ncclComm_t comm = as_comm(dev.nccl());
  const decode_split split = split_cache(s, P);
  const int first = split.begins[static_cast<std::size_t>(r)];
  const std::int64_t rows = static_cast<std::int64_t>(s.batch) * s.q_heads;
  std::unique_ptr<shard_cache> held;
  cuda::device_buffer<bf16> q, out;
  cuda::device_buffer<float> part, lse, all_part, all_lse;
  allocate_together(g, [&] {
    held = std::make_unique<shard_cache>(s, first, split.sizes[static_cast<std::size_t>(r)], st);
    if (s.keep < 1.0)
      held->keep_smallest_norms({0}, {held->rows}, {split.counts[static_cast<std::size_t>(r)]},
                                st);
    q.resize(static_cast<std::size_t>(rows) * d);
    out.resize(q.size());
    part.resize(static_cast<std::size_t>(rows) * d);
    lse.resize(static_cast<std::size_t>(rows));
    all_part.resize(static_cast<std::size_t>(P) * rows * d);
    all_lse.resize(static_cast<std::size_t>(P) * rows);
  });
  const shard_cache& cache = *held;
  cuda::fill_hash(q.data(), q.size(), q_seed(s), qk_amplitude, st);
  cuda::decode_args<bf16> a = cache.args(s, q.data());
  cuda::decode_workspace ws;
  cuda::plan_decode(a, ws, cuda::multiprocessors());
  ATTNBENCH_CUDA(cudaDeviceSynchronize());
  event e0, e1, e2, e3;
  auto step = [&] {
    e0.record(st);
    cuda::decode<bf16, float>(a, cache.mode(), part.data(), static_cast<std::int64_t>(s.q_heads) * d,
                              st, lse.data());
    e1.record(st);
    CP_NCCL(ncclGroupStart());
    CP_NCCL(ncclAllGather(part.data(), all_part.data(), part.size(), ncclFloat32, comm, st));
    CP_NCCL(ncclAllGather(lse.data(), all_lse.data(), lse.size(), ncclFloat32, comm, st));
    CP_NCCL(ncclGroupEnd());
    e2.record(st);
    merge_gathered_kernel<<<static_cast<unsigned>(rows), static_cast<unsigned>(d), 0, st>>>(
        all_part.data(), all_lse.data(), P, rows, d, out.data());
    ATTNBENCH_CUDA_LAUNCHED();
    e3.record(st);
  };
  cp_measure m;
  m.ms = time_reps(&g, reps, st, step);
  m.compute_ms = {elapsed(e0, e1) + elapsed(e2, e3)};
  m.comm_ms = {elapsed(e1, e2)};
  if (r == 0) {
    // The reference over the same rows: every rank's kept rows, as global tokens (the single-GPU
    // selection over the same shard ranges makes the same list).
    if (s.keep < 1.0) {
      shard_cache whole(s, 0, s.tokens, st);
      whole.keep_smallest_norms(split.begins, split.sizes, split.counts, st);
      check_decode(s, whole.kept.data(), whole.kept_per_segment, out.data(), m);
    } else {
      check_decode(s, nullptr, 0, out.data(), m);
    }
  }
  return m;
}

// ---- The single-GPU baseline. ----

cp_measure run_single_gpu(const cp_shape& s, const std::string& phase, int ranks, int reps,
                          const std::vector<int>& ref_tokens) {
  cudaStream_t st = nullptr;
  ATTNBENCH_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cp_measure m;
  const int d = s.head_dim;
  if (phase == "prefill") {
    check_shape(s);
    const std::int64_t n = s.tokens;
    cuda::device_buffer<bf16> q(static_cast<std::size_t>(n) * s.q_heads * d), o(q.size()),
        k(static_cast<std::size_t>(n) * s.kv_heads * d), v(k.size());
    fill_qkv(s, 0, n, q.data(), k.data(), v.data(), st);
    const cuda::prefill_args a = cuda::token_major_prefill(
        q.data(), k.data(), v.data(), o.data(), 1, static_cast<int>(n), static_cast<int>(n),
        s.q_heads, s.kv_heads, d, 1.0f / std::sqrt(static_cast<float>(d)), s.causal);
    m.ms = time_reps(nullptr, reps, st, [&] { cuda::flash_prefill<bf16>(a, st); });
    m.compute_ms = {m.ms.back()};
    std::vector<ref_task> tasks;
    std::vector<const bf16*> rows;
    for (int token : ref_tokens)
      prefill_checks(s, token, o.data() + static_cast<std::int64_t>(token) * s.q_heads * d,
                     tasks, rows);
    check_rows(tasks, rows, s, m);
  } else {
    check_decode_shape(s);
    const decode_split split = split_cache(s, ranks);
    shard_cache cache(s, 0, s.tokens, st);
    if (s.keep < 1.0) cache.keep_smallest_norms(split.begins, split.sizes, split.counts, st);
    const std::int64_t rows = static_cast<std::int64_t>(s.batch) * s.q_heads;
    cuda::device_buffer<bf16> q(static_cast<std::size_t>(rows) * d), out(q.size());
    cuda::fill_hash(q.data(), q.size(), q_seed(s), qk_amplitude, st);
    cuda::decode_args<bf16> a = cache.args(s, q.data());
    cuda::decode_workspace ws;
    cuda::plan_decode(a, ws, cuda::multiprocessors());
    ATTNBENCH_CUDA(cudaDeviceSynchronize());
    m.ms = time_reps(nullptr, reps, st, [&] {
      cuda::decode<bf16, bf16>(a, cache.mode(), out.data(),
                               static_cast<std::int64_t>(s.q_heads) * d, st);
    });
    m.compute_ms = {m.ms.back()};
    check_decode(s, s.keep < 1.0 ? cache.kept.data() : nullptr, cache.kept_per_segment,
                 out.data(), m);
  }
  ATTNBENCH_CUDA(cudaStreamSynchronize(st));
  cudaStreamDestroy(st);
  return m;
}

}  // namespace attnbench::cp
