// CUDA sampling kernels: one thread block per row, no sort.
//
// The per-row arithmetic (parameter checks, penalties, the exp of the weights,
// the Philox draw) is the __host__ __device__ code of sampling/row_common.hpp,
// the same functions the CPU sampler runs. Thresholds are exact selections:
// top-k by a 4 x 8-bit radix select of the k-th largest logit (ties kept),
// top-p by a 4 x 8-bit radix select *by mass* over the float bits of the
// weights (ties kept), min-p by a comparison; the draw is an inverse CDF in
// token order with block-wide prefix sums (for top-p alone with p >= 0.5, by
// rejection first, as on the CPU). Sums are float64 but their order differs
// from the CPU's, so a CUDA draw equals the CPU draw except when a uniform
// number or a rejection test falls within rounding of a boundary.
#include "cuda/sampling_kernels.cuh"

#include <cuda_runtime.h>

#include <cfloat>
#include <climits>
#include <cmath>

#include "sampling/row_common.hpp"

namespace aigc::cuda {
namespace {

using sampling::SamplingParams;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

struct Shared {
  double dred[kWarps];
  float fred[kWarps];
  long long ired[kWarps];
  int flag;
  double hist_mass[256];
  unsigned int hist_count[256];
  unsigned int prefix;
  double target;
  int done;
};

__device__ float block_max(float v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) sh.fred[warp] = v;
  __syncthreads();
  v = lane < kWarps ? sh.fred[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ double block_sum(double v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) sh.dred[warp] = v;
  __syncthreads();
  v = lane < kWarps ? sh.dred[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ long long block_min(long long v, Shared& sh) {
  for (int o = 16; o > 0; o >>= 1) {
    long long u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u < v ? u : v;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) sh.ired[warp] = v;
  __syncthreads();
  v = lane < kWarps ? sh.ired[lane] : LLONG_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    long long u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u < v ? u : v;
  }
  return v;
}

__device__ long long block_max_index(long long v, Shared& sh) { return -block_min(-v, sh); }

// Inclusive prefix sum over the block (thread order); total returned in `total`.
__device__ double block_inclusive_scan(double v, double& total, Shared& sh) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int o = 1; o < 32; o <<= 1) {
    double u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  __syncthreads();
  if (lane == 31) sh.dred[warp] = v;
  __syncthreads();
  double offset = 0.0;
  total = 0.0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) offset += sh.dred[w];
    total += sh.dred[w];
  }
  return v + offset;
}

__device__ bool is_pos_inf(float v) { return v > FLT_MAX; }

// The inverse CDF in token order over the weights w[i] with keep(i): the
// first token whose running mass exceeds target, else (rounding) the last one
// with a positive weight; -1 when there is none. Every thread gets the result.
template <class Keep>
__device__ long long block_draw(const float* w, std::int64_t n, Keep keep, double target,
                                Shared& sh) {
  double acc = 0.0;
  long long last = -1;
  for (std::int64_t base = 0; base < n; base += kThreads) {
    const std::int64_t i = base + threadIdx.x;
    const double v = (i < n && keep(i)) ? static_cast<double>(w[i]) : 0.0;
    double total;
    const double incl = block_inclusive_scan(v, total, sh);
    long long hit = (v > 0.0 && acc + incl > target) ? i : LLONG_MAX;
    hit = block_min(hit, sh);
    if (hit != LLONG_MAX) return hit;
    const long long tile_last = block_max_index(v > 0.0 ? i : -1, sh);
    last = tile_last > last ? tile_last : last;
    acc += total;
  }
  return last;
}

__global__ void __launch_bounds__(kThreads) sampling_kernel(LaunchArgs a) {
  __shared__ Shared sh;
  const std::int64_t r = blockIdx.x;
  const std::int64_t n = a.vocab;
  const int tid = threadIdx.x;
  const SamplingParams p = a.params[r];

  auto fail = [&](int code) {
    if (tid == 0) {
      a.status[r] = code;
      if (a.out) a.out[r] = -1;
    }
    if (a.probs)
      for (std::int64_t i = tid; i < n; i += kThreads) a.probs[r * n + i] = 0.0f;
  };

  const int param_error = sampling::check_params(p);
  if (param_error != sampling::kParamOk) return fail(param_error);

  const std::int64_t* hist = a.history ? a.history + r * a.history_len : nullptr;
  const std::int64_t hl = a.history ? a.history_len : 0;
  if (tid == 0) sh.flag = 0;
  __syncthreads();
  for (std::int64_t j = tid; j < hl; j += kThreads)
    if (hist[j] >= n) atomicOr(&sh.flag, 1);
  __syncthreads();
  if (sh.flag) return fail(kErrHistory);

  const float* x = a.logits + r * n;
  float* row = a.workspace + r * n * 2;
  float* w = row + n;
  if (sampling::has_penalties(p) && hl > 0) {
    for (std::int64_t i = tid; i < n; i += kThreads) row[i] = x[i];
    __syncthreads();
    for (std::int64_t j = tid; j < hl; j += kThreads) {
      const std::int64_t t = hist[j];
      if (t < 0) continue;
      bool first = true;
      std::int64_t count = 0;
      for (std::int64_t i = 0; i < hl; ++i) {
        if (hist[i] == t) {
          if (i < j) first = false;
          ++count;
        }
      }
      if (first)
        row[t] = sampling::penalised_logit(x[t], count, p.repetition_penalty, p.presence_penalty,
                                           p.frequency_penalty);
    }
    __syncthreads();
    x = row;
  }

  // Maximum and row checks.
  float mx = -INFINITY;
  int bad = 0;
  for (std::int64_t i = tid; i < n; i += kThreads) {
    const float v = x[i];
    if (sampling::is_nan(v)) bad |= 1;
    else if (is_pos_inf(v)) bad |= 2;
    else mx = fmaxf(mx, v);
  }
  if (tid == 0) sh.flag = 0;
  __syncthreads();
  if (bad) atomicOr(&sh.flag, bad);
  const float m = block_max(mx, sh);
  const int flags = sh.flag;
  if (flags & 1) return fail(kErrNan);
  if (flags & 2) return fail(kErrPosInf);
  if (m == -INFINITY) return fail(kErrNoFinite);
  if (tid == 0) a.status[r] = 0;

  if (p.temperature == 0.0f) {  // greedy: the first maximum
    long long first = LLONG_MAX;
    for (std::int64_t i = tid; i < n; i += kThreads)
      if (x[i] == m && i < first) first = i;
    first = block_min(first, sh);
    if (tid == 0 && a.out) a.out[r] = first;
    if (a.probs)
      for (std::int64_t i = tid; i < n; i += kThreads) a.probs[r * n + i] = i == first ? 1.0f : 0.0f;
    return;
  }
  const float t_scale = sampling::log2_weight_scale(p.temperature);

  // Top-k: the k-th largest logit by radix select over order-preserving keys.
  float thr_k = -INFINITY;
  if (sampling::top_k_active(p, n)) {
    unsigned int prefix = 0, mask = 0;
    unsigned int want = static_cast<unsigned int>(p.top_k);
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = tid; d < 256; d += kThreads) sh.hist_count[d] = 0;
      __syncthreads();
      for (std::int64_t i = tid; i < n; i += kThreads) {
        const unsigned int key = sampling::ordered_key(x[i]);
        if ((key & mask) == prefix) atomicAdd(&sh.hist_count[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        unsigned int acc = 0;
        int d = 255;
        for (; d > 0; --d) {
          if (acc + sh.hist_count[d] >= want) break;
          acc += sh.hist_count[d];
        }
        sh.prefix = prefix | (static_cast<unsigned int>(d) << shift);
        sh.hist_count[0] = want - acc;  // remaining rank inside the chosen digit
      }
      __syncthreads();
      want = sh.hist_count[0];
      prefix = sh.prefix;
      mask |= 255u << shift;
      __syncthreads();
    }
    thr_k = sampling::key_float(prefix);
  }

  // Weights and their sum.
  double z = 0.0;
  for (std::int64_t i = tid; i < n; i += kThreads) {
    const float v = x[i];
    const float wi = (v >= thr_k && v > -INFINITY) ? sampling::exp2_weight((v - m) * t_scale) : 0.0f;
    w[i] = wi;
    z += wi;
  }
  z = block_sum(z, sh);  // also orders the writes of w before the reads below

  const std::uint64_t seed = static_cast<std::uint64_t>(a.seed ? a.seed[r] : 0);
  const std::uint64_t stream = static_cast<std::uint64_t>(a.stream ? a.stream[r] : 0);
  const std::uint64_t step = static_cast<std::uint64_t>(a.step ? a.step[r] : 0);
  // A draw with top-p alone and p >= 0.5: by rejection, as draw_top_p in
  // draw.inc (a drawn token is in the top-p set iff the mass above its
  // weight is below p * z; else the next round draws from the weights above
  // it), then, after kRejectRounds rejections, by the exact threshold below.
  int draw_round = 0;
  if (!a.probs && sampling::draw_top_p_by_rejection(p, n)) {
    const double target = static_cast<double>(p.top_p) * z;
    float pivot = -1.0f;  // every weight is above it
    double mass = z;
    for (; draw_round < sampling::kRejectRounds; ++draw_round) {
      const double u = sampling::draw_uniform_round(seed, stream, step, draw_round);
      const long long i =
          block_draw(w, n, [&](std::int64_t j) { return w[j] > pivot; }, u * mass, sh);
      if (i < 0) break;  // unreachable: the maximum (1) is above every pivot
      const float wi = w[i];
      double above = 0.0;
      for (std::int64_t j = tid; j < n; j += kThreads) above += w[j] > wi ? w[j] : 0.0f;
      above = block_sum(above, sh);
      if (above < target) {
        if (tid == 0) a.out[r] = i;
        return;
      }
      pivot = wi;
      mass = above;
    }
  }

  // Top-p: the largest weight t with mass(w >= t) >= top_p * z, by radix
  // select over the weights' float bits (non-negative floats order as integers).
  float thr_p = 0.0f;
  if (sampling::top_p_active(p)) {
    unsigned int prefix = 0, mask = 0;
    if (tid == 0) {
      sh.target = static_cast<double>(p.top_p) * z;
      sh.done = 0;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = tid; d < 256; d += kThreads) sh.hist_mass[d] = 0.0;
      __syncthreads();
      for (std::int64_t i = tid; i < n; i += kThreads) {
        const unsigned int key = sampling::float_bits(w[i]);
        if ((key & mask) == prefix) atomicAdd(&sh.hist_mass[(key >> shift) & 255u], (double)w[i]);
      }
      __syncthreads();
      if (tid == 0) {
        double acc = 0.0;
        int d = 255;
        for (; d >= 0; --d) {
          if (acc + sh.hist_mass[d] >= sh.target) break;
          acc += sh.hist_mass[d];
        }
        if (d < 0) {
          sh.done = 1;  // rounding: the whole set is needed
          sh.prefix = 0;
        } else {
          sh.target -= acc;
          sh.prefix = prefix | (static_cast<unsigned int>(d) << shift);
        }
      }
      __syncthreads();
      prefix = sh.prefix;
      mask |= 255u << shift;
      if (sh.done) break;
    }
    thr_p = sampling::bits_float(prefix);
  }
  const float lmp = sampling::min_p_active(p) ? static_cast<float>(log2(static_cast<double>(p.min_p)))
                                              : -INFINITY;
  auto kept = [&](std::int64_t i) {
    const float v = x[i];
    return v > -INFINITY && v >= thr_k && w[i] >= thr_p && (v - m) * t_scale >= lmp;
  };

  double zk = 0.0;
  for (std::int64_t i = tid; i < n; i += kThreads)
    if (kept(i)) zk += w[i];
  zk = block_sum(zk, sh);

  if (a.probs) {
    for (std::int64_t i = tid; i < n; i += kThreads)
      a.probs[r * n + i] = kept(i) ? static_cast<float>(w[i] / zk) : 0.0f;
    return;
  }

  const double u = sampling::draw_uniform_round(seed, stream, step, draw_round);
  const long long hit = block_draw(w, n, kept, u * zk, sh);
  if (tid == 0) a.out[r] = hit;
}

}  // namespace

std::size_t workspace_floats(std::int64_t rows, std::int64_t vocab) {
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(vocab) * 2;
}

cudaError_t launch_sampling(const LaunchArgs& args, cudaStream_t stream) {
  if (args.rows == 0) return cudaSuccess;
  sampling_kernel<<<static_cast<unsigned int>(args.rows), kThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace aigc::cuda
