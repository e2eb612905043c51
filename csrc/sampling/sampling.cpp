// The CPU token sampler: penalties, temperature, top-k, top-p, min-p, one draw.
//
// No full sort. A row is read once for its maximum (or, with top-k, once for
// a running lower bound of the k-th largest score, raised by a selection over
// the scores above it every k candidates, skipping 64-score blocks whose
// maximum is below it); every later step works only on the
// surviving candidates. The top-p threshold is a selection by mass: a radix
// histogram over the float bits of the weights (ties stay together), built
// exactly only for a bracket found from a sample (checked, with retries and a
// full-histogram fallback), refined by two more radix levels, and a sort only
// for the last few hundred candidates.
#include "sampling/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "parallel.hpp"
#include "sampling/row_common.hpp"

namespace aigc::sampling {
namespace {

constexpr std::int64_t kBlock = 64;          // scores per block in full-row passes
constexpr std::int64_t kSortLimit = 512;     // candidates sorted outright in mass selection
constexpr std::int64_t kParallelGrain = 1 << 15;  // scores per thread at least
constexpr int kHist1 = 4096;                 // level-1 buckets of the top-p radix selection
constexpr std::int64_t kFusedMinRow = 4096;  // rows that take the fused top-p pass
constexpr float kInf = std::numeric_limits<float>::infinity();

std::size_t align64(std::size_t x) { return (x + 63) & ~static_cast<std::size_t>(63); }

struct Scratch {
  float* row;           // n: penalised copy of the row
  std::int32_t* idx;    // n: candidate ids; penalty counts before that
  float* w;             // n: weights
  float* tmp;           // n: heap, mass-selection buffer
  double* block_sums;   // n / kBlock + 1
  double* hist;         // 4 * kHist1 for rows of kFusedMinRow or more, else null
};

// Bytes of one double per block (and one more), and of the fused top-p
// histograms (rows of kFusedMinRow scores or more only).
std::size_t block_bytes(std::int64_t n) {
  return align64((static_cast<std::size_t>(n) / kBlock + 1) * sizeof(double));
}
std::size_t hist_bytes(std::int64_t n) {
  return n >= kFusedMinRow ? 4 * kHist1 * sizeof(double) : 0;
}

Scratch carve(void* scratch, std::int64_t n) {
  auto base = reinterpret_cast<std::uintptr_t>(scratch);
  char* p = reinterpret_cast<char*>(align64(base));
  const std::size_t fn = align64(static_cast<std::size_t>(n) * 4);
  Scratch s;
  s.row = reinterpret_cast<float*>(p);
  s.idx = reinterpret_cast<std::int32_t*>(p + fn);
  s.w = reinterpret_cast<float*>(p + 2 * fn);
  s.tmp = reinterpret_cast<float*>(p + 3 * fn);
  s.block_sums = reinterpret_cast<double*>(p + 4 * fn);
  s.hist = hist_bytes(n) ? reinterpret_cast<double*>(p + 4 * fn + block_bytes(n)) : nullptr;
  return s;
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

[[noreturn]] void throw_param_error(int code, const SamplingParams& p) {
  switch (code) {
    case kBadTemperature:
      throw std::invalid_argument("temperature must be finite and >= 0 (0 = greedy), got " +
                                  fmt(p.temperature));
    case kBadTopP:
      throw std::invalid_argument("top_p must be > 0 (>= 1 disables it), got " + fmt(p.top_p));
    case kBadMinP:
      throw std::invalid_argument("min_p must be <= 1 (<= 0 disables it), got " + fmt(p.min_p));
    case kBadRepetition:
      throw std::invalid_argument("repetition_penalty must be finite and > 0 (1 disables it), got " +
                                  fmt(p.repetition_penalty));
    case kBadPresence:
      throw std::invalid_argument("presence_penalty must be finite, got " + fmt(p.presence_penalty));
    default:
      throw std::invalid_argument("frequency_penalty must be finite, got " +
                                  fmt(p.frequency_penalty));
  }
}

void check_row_args(std::int64_t n, const SamplingParams& params, const std::int32_t* history,
                    std::int64_t history_len) {
  if (n <= 0) throw std::invalid_argument("a row needs at least one score, got n = " + std::to_string(n));
  if (n > std::numeric_limits<std::int32_t>::max())
    throw std::invalid_argument("rows of more than 2^31 - 1 scores are not supported, got n = " +
                                std::to_string(n));
  const int code = check_params(params);
  if (code != kParamOk) throw_param_error(code, params);
  if (history_len < 0) throw std::invalid_argument("history_len must be >= 0, got " + std::to_string(history_len));
  if (history_len > 0 && history == nullptr)
    throw std::invalid_argument("history is null but history_len = " + std::to_string(history_len));
  for (std::int64_t j = 0; j < history_len; ++j) {
    if (history[j] >= n)
      throw std::invalid_argument("history token id " + std::to_string(history[j]) + " at position " +
                                  std::to_string(j) + " is out of range for a row of " +
                                  std::to_string(n) + " scores");
  }
}

// Copies the row to out and applies the penalties of the (checked) history;
// counts (n int32) is used as scratch, only at the history's ids.
void apply_penalties(const float* logits, std::int64_t n, const SamplingParams& p,
                     const std::int32_t* history, std::int64_t history_len, float* out,
                     std::int32_t* counts) {
  std::memcpy(out, logits, static_cast<std::size_t>(n) * sizeof(float));
  for (std::int64_t j = 0; j < history_len; ++j)
    if (history[j] >= 0) counts[history[j]] = 0;
  for (std::int64_t j = 0; j < history_len; ++j)
    if (history[j] >= 0) ++counts[history[j]];
  for (std::int64_t j = 0; j < history_len; ++j) {
    const std::int32_t t = history[j];
    if (t < 0 || counts[t] == 0) continue;
    out[t] = penalised_logit(logits[t], counts[t], p.repetition_penalty, p.presence_penalty,
                             p.frequency_penalty);
    counts[t] = 0;  // once per distinct token
  }
}

[[noreturn]] void throw_bad_row(const float* x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (is_nan(x[i])) throw std::invalid_argument("NaN logit at index " + std::to_string(i));
    if (x[i] == kInf)
      throw std::invalid_argument("+inf logit at index " + std::to_string(i) +
                                  " (logits must be finite or -inf)");
  }
  throw std::invalid_argument("no finite logit in the row (all " + std::to_string(n) +
                              " scores are -inf)");
}

// ---------------------------------------------------------------- vector kernels
// GCC/Clang vector extensions (8 floats): SSE2 code by default, and an AVX2
// clone picked at load time where the CPU has it (target_clones). No FMA in
// either, so both compute the same bits as the scalar functions of
// row_common.hpp, and a draw does not depend on the machine's vector width.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define AIGC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AIGC_CLONES
#endif

// The helpers below pass 32-byte vectors by value between internal-linkage
// functions only, so GCC's note about the AVX calling convention is moot.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#define AIGC_VEC static inline __attribute__((always_inline))
typedef float VF __attribute__((vector_size(32)));
typedef std::int32_t VI __attribute__((vector_size(32)));
typedef double VD __attribute__((vector_size(32)));
constexpr int kW = 8;

AIGC_VEC VF load(const float* p) {
  VF v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
AIGC_VEC void store(float* p, const VF& v) { std::memcpy(p, &v, sizeof v); }
AIGC_VEC float hmax(const VF& v) {
  float m = v[0];
  for (int l = 1; l < kW; ++l) m = v[l] > m ? v[l] : m;
  return m;
}
// Adds the 8 lanes of v, as doubles, to the 4 lanes of d (lanes l and l + 4
// of v go to lane l).
AIGC_VEC void add_to(VD& d, const VF& v) {
  d += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), VD);
  d += __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), VD);
}
AIGC_VEC double hsum_d(const VD& d) { return (d[0] + d[1]) + (d[2] + d[3]); }
AIGC_VEC float hmin(const VF& v) {
  float m = v[0];
  for (int l = 1; l < kW; ++l) m = v[l] < m ? v[l] : m;
  return m;
}
AIGC_VEC float hsum(const VF& v) {
  float s = 0.0f;
  for (int l = 0; l < kW; ++l) s += v[l];
  return s;
}
// Bit l set when lane l of the mask is set (lanes are 0 or -1).
AIGC_VEC unsigned lane_mask(const VI& m) {
#if defined(__x86_64__) || defined(__SSE__)
  __m128 lo, hi;
  std::memcpy(&lo, &m, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&m) + sizeof lo, sizeof hi);
  return static_cast<unsigned>(_mm_movemask_ps(lo)) | (static_cast<unsigned>(_mm_movemask_ps(hi)) << 4);
#else
  unsigned r = 0;
  for (int l = 0; l < kW; ++l) r |= static_cast<unsigned>(m[l] != 0) << l;
  return r;
#endif
}
AIGC_VEC bool any(const VI& m) { return lane_mask(m) != 0; }
AIGC_VEC VF splat(float f) { return VF{f, f, f, f, f, f, f, f}; }
AIGC_VEC VI splati(std::int32_t i) { return VI{i, i, i, i, i, i, i, i}; }

// exp2_weight of row_common.hpp, 8 lanes, same operations in the same order.
AIGC_VEC VF exp2_weight_v(const VF& t_in) {
  const VF lo = splat(kMinLog2Weight);
  const VF t = t_in > lo ? t_in : lo;
  const VF shifted = t + splat(kRoundMagic);
  const VF n = shifted - splat(kRoundMagic);
  const VF f = t - n;
  VF p = splat(kC5);
  p = p * f + splat(kC4);
  p = p * f + splat(kC3);
  p = p * f + splat(kC2);
  p = p * f + splat(kC1);
  p = p * f + splat(1.0f);
  const VI e = ((VI)shifted - splati(static_cast<std::int32_t>(kRoundMagicBits - 127u))) << 23;
  return p * (VF)e;
}

// Maximum of a range; sets bad when it holds a NaN. Four independent lanes
// of accumulators (a max and a sum each) keep the loop at memory speed; a
// NaN makes a sum NaN (so do +inf mixed with -inf, and overflow: such ranges
// are re-checked exactly).
AIGC_CLONES float range_max(const float* x, std::int64_t len, bool& bad) {
  VF mx[4] = {splat(-kInf), splat(-kInf), splat(-kInf), splat(-kInf)};
  VF sum[4] = {splat(0.0f), splat(0.0f), splat(0.0f), splat(0.0f)};
  std::int64_t i = 0;
  for (; i + 4 * kW <= len; i += 4 * kW) {
    for (int q = 0; q < 4; ++q) {
      const VF v = load(x + i + q * kW);
      mx[q] = v > mx[q] ? v : mx[q];
      sum[q] += v;
    }
  }
  for (; i + kW <= len; i += kW) {
    const VF v = load(x + i);
    mx[0] = v > mx[0] ? v : mx[0];
    sum[0] += v;
  }
  for (int q = 1; q < 4; ++q) {
    mx[0] = mx[q] > mx[0] ? mx[q] : mx[0];
    sum[0] += sum[q];
  }
  float m = hmax(mx[0]);
  bool any_nan = false;
  if (any(sum[0] != sum[0]))
    for (std::int64_t j = 0; j < i; ++j) any_nan |= (x[j] != x[j]);
  for (; i < len; ++i) {
    const float v = x[i];
    m = v > m ? v : m;
    any_nan |= (v != v);
  }
  if (any_nan) bad = true;
  return m;
}

// The first index of value v in x (which holds it).
AIGC_CLONES std::int64_t find_first(const float* x, std::int64_t n, float v) {
  const VF vv = splat(v);
  std::int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const unsigned hit = lane_mask(load(x + i) == vv);
    if (hit) return i + __builtin_ctz(hit);
  }
  while (x[i] != v) ++i;
  return i;
}

// The row maximum; throws on NaN, +inf and rows without a finite score.
float checked_max(const float* x, std::int64_t n) {
  bool bad = false;
  const float m = range_max(x, n, bad);
  if (bad || m == kInf || m == -kInf) throw_bad_row(x, n);
  return m;
}

// Top-k candidates: writes to idx (ascending ids) every finite score >= the
// k-th largest score (counted with multiplicity), returns their number and the
// row maximum. buf holds min(2k, n) floats. Returns -1 for a row with a NaN,
// +inf or no finite score.
//
// The running threshold thr is a lower bound of the k-th largest score: buf
// collects the scores above it, and when it holds cap = min(2k, n) of them a
// selection (nth_element) raises thr to their k-th largest and keeps those k.
// Every finite score >= thr when seen is a candidate (its id appended); the
// final threshold, the k-th largest of buf, is then exact and filters them.
struct TopKState {
  std::int64_t k, cap, size = 0, count = 0;
  float thr = -std::numeric_limits<float>::infinity();
  float* buf;
  std::int32_t* idx;
  // The lanes' test of the scan, v >= thr_v: thr, or the lowest finite score
  // while thr is -inf (a -inf score is never a candidate).
  VF thr_v = splat(-kFloatMax);
};

inline void top_k_select(TopKState& st) {
  std::nth_element(st.buf, st.buf + (st.k - 1), st.buf + st.size, std::greater<float>());
  st.thr = st.buf[st.k - 1];  // finite: buf holds finite scores only
  st.thr_v = splat(st.thr);
  st.size = st.k;
}

// One score v at id j of the top-k scan.
inline void top_k_offer(float v, std::int64_t j, TopKState& st) {
  if (!(v >= st.thr) || v == -kInf) return;
  st.idx[st.count++] = static_cast<std::int32_t>(j);
  if (v > st.thr || st.thr == -kInf) {
    st.buf[st.size++] = v;
    if (st.size == st.cap) top_k_select(st);
  }
}

AIGC_CLONES std::int64_t top_k_candidates(const float* x, std::int64_t n, std::int64_t k,
                                          float* buf, std::int32_t* idx, float& max_out) {
  TopKState st{k, std::min(2 * k, n), 0, 0, -kInf, buf, idx, splat(-kFloatMax)};
  VF row_max = splat(-kInf);
  VI nan = splati(0);
  std::int64_t b = 0;
  for (; b + kBlock <= n; b += kBlock) {
    // 16 blocks ahead: the hardware prefetcher alone falls behind this loop's
    // mispredicted branches when rows come from memory (about 10% at batch 64).
    for (int line = 0; line < kBlock; line += 16) __builtin_prefetch(x + b + 16 * kBlock + line);
    VF v[kBlock / kW];
    for (int q = 0; q < kBlock / kW; ++q) v[q] = load(x + b + q * kW);
    // A NaN makes the lane sums NaN (so do +inf with -inf, and overflow with
    // -inf: such rows are re-checked exactly below).
    VF sum = v[0];
    VF mx = v[0];
    for (int q = 1; q < kBlock / kW; ++q) {
      sum += v[q];
      mx = v[q] > mx ? v[q] : mx;
    }
    nan |= (sum != sum);
    row_max = mx > row_max ? mx : row_max;
    if (!any(mx >= st.thr_v)) continue;  // nothing reaches the threshold
    for (int q = 0; q < kBlock / kW; ++q) {
      unsigned hits = lane_mask(v[q] >= st.thr_v);
      while (hits) {
        const int l = __builtin_ctz(hits);
        hits &= hits - 1;
        top_k_offer(x[b + q * kW + l], b + q * kW + l, st);
      }
    }
  }
  float m = hmax(row_max);
  bool bad = false;
  if (any(nan)) {  // possibly a NaN: look exactly
    for (std::int64_t i = 0; i < b; ++i) bad |= (x[i] != x[i]);
  }
  for (; b < n; ++b) {
    const float v = x[b];
    m = v > m ? v : m;
    bad |= (v != v);
    top_k_offer(v, b, st);
  }
  // Thrown by the caller: unwinding through a target_clones function aborts.
  if (bad || m == kInf || m == -kInf) return -1;
  // The k-th largest finite score (buf holds every score above the running
  // threshold, and k of them once it was raised); fewer than k: all are kept.
  float thr = -kInf;
  if (st.size >= k) {
    top_k_select(st);
    thr = st.thr;
  }
  const std::int64_t count = st.count;
  std::int64_t kept = 0;
  for (std::int64_t j = 0; j < count; ++j)
    if (x[idx[j]] >= thr) idx[kept++] = idx[j];
  max_out = m;
  return kept;
}

// The largest value t such that the values >= t hold mass >= target, among the
// first `count` of vals (sorted here, destroyed). 0 when target is not reached.
float sorted_threshold(float* vals, std::int64_t count, double target) {
  std::sort(vals, vals + count, [](float a, float b) { return a > b; });
  double acc = 0.0;
  for (std::int64_t j = 0; j < count; ++j) {
    acc += vals[j];
    if (acc >= target) return vals[j];
  }
  return 0.0f;
}

// Top-p threshold by mass over non-negative weights w[0..count): the largest
// weight value t with sum(w >= t) >= target (ties at t all kept). A radix
// selection over the float bits (non-negative floats order as integers, and
// weights are <= 1): level 1 buckets by bits 29..18 (exponent and 5 mantissa
// bits, 32 buckets per octave), level 2 by bits 17..9, level 3 by bits 8..0;
// each level keeps only the bucket where the mass crosses the target, and a
// bucket of at most kSortLimit values is sorted instead.
constexpr int kShift1 = 18;

inline std::uint32_t digit1(float w) { return (float_bits(w) >> kShift1) & (kHist1 - 1); }

// Level-1 histogram of a range of weights (added to hist).
inline void add_hist1(const float* w, std::int64_t len, double* hist) {
  for (std::int64_t j = 0; j < len; ++j) hist[digit1(w[j])] += w[j];
}

// Lane indices that move the set lanes of an 8-bit mask to the front, in
// order (a stream compaction by one permutation per vector).
struct CompressTable {
  alignas(32) std::int32_t perm[256][kW];
  constexpr CompressTable() : perm() {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int l = 0; l < kW; ++l)
        if (m & (1 << l)) perm[m][k++] = l;
      for (; k < kW; ++k) perm[m][k] = 0;
    }
  }
};
constexpr CompressTable kCompress;

// Appends the lanes of v set in mask (bit l = lane l) to out + k, in order,
// and returns the new count. It stores all 8 lanes whatever the mask (no
// branch to mispredict), so out + k needs room for 8 floats; the callers
// compact in place or into a buffer as long as their input, where the store
// at out + k, k <= their index, stays within it.
AIGC_VEC std::int64_t compact_store(float* out, std::int64_t k, const VF& v, unsigned mask) {
  VI perm;
  std::memcpy(&perm, kCompress.perm[mask], sizeof perm);
  store(out + k, __builtin_shuffle(v, perm));
  return k + __builtin_popcount(mask);
}

// Copies the weights of level-1 bucket `bucket` to out, in order; returns
// their number. out may be w itself (the stores at out + k, k <= j, only
// cover values already loaded) and needs no slack.
AIGC_CLONES std::int64_t gather_bucket1(const float* w, std::int64_t count, std::uint32_t bucket,
                                        float* out) {
  const VI want = splati(static_cast<std::int32_t>(bucket));
  const VI mask = splati(kHist1 - 1);
  std::int64_t k = 0, j = 0;
  for (; j + kW <= count; j += kW) {
    const VF v = load(w + j);
    k = compact_store(out, k, v, lane_mask((((VI)v >> kShift1) & mask) == want));
  }
  for (; j < count; ++j)
    if (digit1(w[j]) == bucket) out[k++] = w[j];
  return k;
}

// The mass of weights whose level-1 digit is above `hi`; adds the weights with
// digits in [lo, hi] to hist (the exact histogram of that bracket) and copies
// them to out (their number in *out_count). The copies are made first, by
// compaction (out needs no slack: a vector of 8 lanes is stored at out + k
// with k <= j, so within out[0..count)), and the histogram is then built from
// them in the same (id) order, so its sums are those of a direct pass.
AIGC_CLONES double bracket_pass(const float* w, std::int64_t count, std::uint32_t lo,
                                std::uint32_t hi, double* hist, float* out,
                                std::int64_t* out_count) {
  std::int64_t k = 0;
  const VI vlo = splati(static_cast<std::int32_t>(lo)), vhi = splati(static_cast<std::int32_t>(hi));
  const VI mask = splati(kHist1 - 1);
  double above = 0.0;
  std::int64_t j = 0;
  while (j + kW <= count) {
    VF acc = splat(0.0f);
    const std::int64_t end = std::min(count - kW, j + kBlock - kW);
    for (; j <= end; j += kW) {
      const VF v = load(w + j);
      const VI d = ((VI)v >> kShift1) & mask;
      const VI gt = d > vhi;
      acc += (VF)((VI)v & gt);
      k = compact_store(out, k, v, lane_mask((d >= vlo) & ~gt));
    }
    above += hsum(acc);
  }
  for (; j < count; ++j) {
    const std::uint32_t d = digit1(w[j]);
    if (d > hi) {
      above += w[j];
    } else if (d >= lo) {
      out[k++] = w[j];
    }
  }
  for (std::int64_t i = 0; i < k; ++i) hist[digit1(out[i])] += out[i];
  *out_count = k;
  return above;
}

// The largest b whose cumulative mass from the top, sum(hist[b..]), reaches
// target; *above = the mass of the buckets above b. -1 when never reached.
int crossing_bucket(const double* hist, int top, int bottom, double target, double* above) {
  double acc = 0.0;
  for (int b = top; b >= bottom; --b) {
    if (acc + hist[b] >= target) {
      *above = acc;
      return b;
    }
    acc += hist[b];
  }
  *above = acc;
  return -1;
}

// The mass threshold within one level-1 bucket: the largest value t among
// tmp[0..cnt) (destroyed) with sum(tmp >= t) >= target, by two more radix
// levels (bits 17..9, then 8..0) or a sort once at most kSortLimit are left.
float refine_bucket(float* tmp, std::int64_t cnt, double target) {
  constexpr int kShift[2] = {9, 0};
  double hist[512];
  for (int level = 0; level < 2; ++level) {
    if (cnt <= kSortLimit) return sorted_threshold(tmp, cnt, target);
    const int shift = kShift[level];
    std::memset(hist, 0, sizeof hist);
    for (std::int64_t j = 0; j < cnt; ++j) hist[(float_bits(tmp[j]) >> shift) & 511u] += tmp[j];
    double acc = 0.0;
    int d = 511;
    for (; d >= 0; --d) {
      if (acc + hist[d] >= target) break;
      acc += hist[d];
    }
    if (d < 0) return 0.0f;
    target -= acc;
    std::int64_t kept = 0;
    for (std::int64_t j = 0; j < cnt; ++j)
      if (((float_bits(tmp[j]) >> shift) & 511u) == static_cast<std::uint32_t>(d)) tmp[kept++] = tmp[j];
    cnt = kept;
  }
  return tmp[0];  // all remaining values are equal
}

float mass_threshold(const float* w, std::int64_t count, double target, float* tmp, double total) {
  if (count <= kSortLimit) {
    std::memcpy(tmp, w, static_cast<std::size_t>(count) * sizeof(float));
    return sorted_threshold(tmp, count, target);
  }
  std::unique_ptr<double[]> hist1(new double[kHist1]);
  double* h = hist1.get();
  int b = -1;
  double above = 0.0;
  std::int64_t bracket_count = -1;  // the crossing bucket's values already in tmp
  constexpr std::int64_t kSampleStride = 16;
  double sampled = 0.0;
  if (count >= 64 * kSampleStride) {
    // Bracket the crossing bucket from a 1/16 sample (with a margin of 2% of
    // the mass either side), then histogram exactly only the bracket; fall
    // back to the full histogram when the exact masses show the bracket missed.
    // The sample: one run of 16 weights (a cache line) per 256, at a position
    // that varies from run to run, so that it reads 1/16 of the memory.
    std::memset(h, 0, sizeof(double) * kHist1);
    constexpr std::int64_t kRun = 16, kSpan = kRun * kSampleStride;
    for (std::int64_t base = 0, r = 0; base + kSpan <= count; base += kSpan, ++r) {
      const float* run = w + base + ((r * 7) % kSampleStride) * kRun;
      for (std::int64_t j = 0; j < kRun; ++j) {
        h[digit1(run[j])] += run[j];
        sampled += run[j];
      }
    }
  }
  if (sampled > 0.0) {
    const double scale = total / sampled, margin = 0.02 * total, wide = 0.1 * total;
    int hi = kHist1 - 1, lo = 0, lo_wide = 0;
    double acc = 0.0;
    bool hi_set = false, lo_set = false;
    for (int d = kHist1 - 1; d >= 0; --d) {
      acc += h[d] * scale;
      if (!hi_set && acc > target - margin) {
        hi = d;
        hi_set = true;
      }
      if (!lo_set && acc >= target + margin) {
        lo = d;
        lo_set = true;
      }
      if (acc >= target + wide) {
        lo_wide = d;
        break;
      }
    }
    // Two tries: the bracket, then, if the exact masses show the crossing is
    // above it (typically a peaked row whose few heavy tokens the sample
    // missed), everything above the bracket, which is then a short list, or,
    // if it is below, the buckets down to a margin of 10% of the mass.
    for (int attempt = 0; attempt < 2 && b < 0; ++attempt) {
      std::memset(h, 0, sizeof(double) * kHist1);
      std::int64_t in_bracket = 0;
      const double exact_above = bracket_pass(w, count, static_cast<std::uint32_t>(lo),
                                              static_cast<std::uint32_t>(hi), h, tmp, &in_bracket);
      if (exact_above < target) {
        double inner = 0.0;
        const int c = crossing_bucket(h, hi, lo, target - exact_above, &inner);
        if (c >= 0) {
          b = c;
          above = exact_above + inner;
          bracket_count = gather_bucket1(tmp, in_bracket, static_cast<std::uint32_t>(b), tmp);
          break;
        }
        if (lo == 0 || lo_wide >= lo) break;  // nothing wider to try: the full histogram
        hi = lo - 1;
        lo = lo_wide;
        continue;
      }
      if (hi >= kHist1 - 1) break;
      lo = hi + 1;
      hi = kHist1 - 1;
    }
  }
  if (b < 0) {  // the exact level-1 histogram of everything
    std::memset(h, 0, sizeof(double) * kHist1);
    add_hist1(w, count, h);
    b = crossing_bucket(h, kHist1 - 1, 0, target, &above);
    if (b < 0) return 0.0f;  // rounding: the whole set is needed
  }
  target -= above;
  const std::int64_t cnt = bracket_count >= 0
                               ? bracket_count
                               : gather_bucket1(w, count, static_cast<std::uint32_t>(b), tmp);
  return refine_bucket(tmp, cnt, target);
}

// Full-row weights w = exp2_weight((x - m) * t_scale), the sum per block of
// kBlock, and their total (returned).
AIGC_CLONES double weights_pass(const float* x, std::int64_t n, float m, float t_scale, float* w,
                                double* block_sums) {
  double z = 0.0;
  const VF mv = splat(m), iv = splat(t_scale);
  const std::int64_t full = n - n % kBlock;
  std::int64_t blk = 0;
  for (std::int64_t b = 0; b < full; b += kBlock, ++blk) {  // whole blocks: fixed trip count
    VF acc = splat(0.0f);
    for (std::int64_t i = b; i < b + kBlock; i += kW) {
      const VF v = exp2_weight_v((load(x + i) - mv) * iv);
      store(w + i, v);
      acc += v;
    }
    const double bs = hsum(acc);
    block_sums[blk] = bs;
    z += bs;
  }
  if (full < n) {
    double bs = 0.0;
    for (std::int64_t i = full; i < n; ++i) {
      const float v = exp2_weight((x[i] - m) * t_scale);
      w[i] = v;
      bs += v;
    }
    block_sums[blk] = bs;
    z += bs;
  }
  return z;
}

// ---------------------------------------------------------------- top-p, fused
// Top-p over a whole row with one pass after the maximum. A sample of the
// scores gives a bracket of level-1 buckets [lo, hi] that probably holds the
// crossing; the pass then computes and stores the weights, their total, the
// mass above the bracket, and copies the weights inside it. The exact masses
// then either confirm the bracket, and the threshold is selected among its
// weights, or not, and mass_threshold runs on the stored weights: the result
// is exact whatever the sample.
constexpr std::int64_t kSampleRun = 16;      // sampled scores: one run of 16 (a cache line)
constexpr std::int64_t kSampleSpan = 256;    // per 256

float level1_floor(int bucket) { return bits_float(static_cast<std::uint32_t>(bucket) << kShift1); }

// The level-1 histogram h[lo..hi] of the values v[0..count) (all in buckets
// lo..hi); h holds 4 * kHist1 doubles. Four interleaved partial histograms
// keep runs of equal buckets from waiting on each other.
void bracket_hist(const float* v, std::int64_t count, int lo, int hi, double* h) {
  const std::size_t width = static_cast<std::size_t>(hi - lo + 1);
  double* part[4] = {h + lo, h + kHist1, h + 2 * kHist1, h + 3 * kHist1};
  for (double* q : part) std::memset(q, 0, width * sizeof(double));
  const std::uint32_t base = static_cast<std::uint32_t>(lo);
  std::int64_t j = 0;
  for (; j + 4 <= count; j += 4)
    for (int q = 0; q < 4; ++q) part[q][digit1(v[j + q]) - base] += v[j + q];
  for (; j < count; ++j) part[0][digit1(v[j]) - base] += v[j];
  for (std::size_t d = 0; d < width; ++d) part[0][d] += (part[1][d] + part[2][d]) + part[3][d];
}

// The bracket [lo, hi] of level-1 buckets that holds the crossing of the mass
// fraction p with high probability, estimated from the weights of a 1/16
// sample (runs of 16 scores) plus the maximum's, which is 1 and is added
// exactly. For a bucket d, F(d) = the estimated fraction of the mass at or
// above d, with the standard error of a ratio estimator,
// SE^2 = sum_j (y_j - F s_j)^2 / S^2 over the sampled weights s_j (y_j = s_j
// when at or above d), from per-bucket masses (a bucket's sum of squares
// taken as its mass times its lowest weight, within 3%); the bracket spans
// the buckets where |F(d) - p| < kBracketZ * SE(d) + a floor of 0.2% (for the
// rounding of an almost-exact estimate).
constexpr double kBracketZ = 3.0;
constexpr double kBracketFloor = 0.002;

AIGC_CLONES void sample_bracket(const float* x, std::int64_t n, float m, float t_scale, double p,
                                float* buf, double* h, int* lo, int* hi) {
  *hi = kHist1 - 1;
  *lo = 0;
  if (n < kSampleSpan) return;  // no sample: the widest bracket
  // The sampled weights into buf, with their sum and minimum.
  const VF mv = splat(m), cv = splat(t_scale);
  VF sum = splat(0.0f), mn = splat(1.0f);
  std::int64_t count = 0;
  for (std::int64_t base = 0, r = 0; base + kSampleSpan <= n; base += kSampleSpan, ++r) {
    const float* run = x + base + ((r * 7) % (kSampleSpan / kSampleRun)) * kSampleRun;
    for (int q = 0; q < kSampleRun / kW; ++q, count += kW) {
      const VF v = exp2_weight_v((load(run + q * kW) - mv) * cv);
      store(buf + count, v);
      sum += v;
      mn = v < mn ? v : mn;
    }
  }
  const int d_top = static_cast<int>(digit1(1.0f));  // no weight exceeds 1
  const int d_min = static_cast<int>(digit1(hmin(mn)));
  bracket_hist(buf, count, d_min, d_top, h);
  // In sampled units the maximum weighs f = (sampled scores) / n, exactly known.
  const double f = static_cast<double>(count) / static_cast<double>(n);
  const double total = f + hsum(sum);
  // |F - p| < z * SE + floor, without roots or divisions: with F = A / S,
  // (A - (p -+ floor) S)^2 against z^2 * ((S - A)^2 Qa + A^2 (Q - Qa)) / S^2.
  const double z2 = kBracketZ * kBracketZ / (total * total);
  // Sums of squares per bucket from its mass: mass * (the bucket's weight),
  // within a factor 1.03.
  double q_total = 0.0;
  for (int d = d_min; d <= d_top; ++d) q_total += h[d] * level1_floor(d);
  double above = f, q_above = 0.0;
  bool hi_set = false;
  for (int d = d_top; d >= d_min; --d) {
    if (h[d] == 0.0 && d != d_top) continue;  // nothing changes
    above += h[d];
    q_above += h[d] * level1_floor(d);
    const double below = total - above;
    const double var_s2 = z2 * (below * below * q_above + above * above * (q_total - q_above));
    if (!hi_set) {
      const double gap = (p - kBracketFloor) * total - above;  // > 0: F below p - floor
      if (gap < 0.0 || gap * gap < var_s2) {
        *hi = d;
        hi_set = true;
      }
    }
    const double gap = above - (p + kBracketFloor) * total;  // > 0: F above p + floor
    if (gap >= 0.0 && gap * gap >= var_s2) {
      *lo = d;
      break;
    }
  }
}

struct FusedSums {
  double z = 0.0;      // total weight
  double above = 0.0;  // weight >= hi_w
  std::int64_t count = 0;  // weights in [lo_w, hi_w), copied to out
};

// Weights w = exp2_weight((x - m) * t_scale) of the whole row, their total,
// the mass of those >= hi_w, and the ones in [lo_w, hi_w) copied to out in
// order (compaction: out needs n floats and no slack). Block by block: the
// weights of a block first, then its bracket work on them while in L1 (one
// loop for both is slower: its long dependency chains fill the reorder buffer).
AIGC_CLONES FusedSums weights_bracket_pass(const float* x, std::int64_t n, float m, float t_scale,
                                           float lo_w, float hi_w, float* w, float* out) {
  const VF mv = splat(m), cv = splat(t_scale), lov = splat(lo_w), hiv = splat(hi_w);
  VD z = {0.0, 0.0, 0.0, 0.0}, above = z;
  std::int64_t k = 0;
  const std::int64_t full = n - n % kBlock;
  for (std::int64_t b = 0; b < full; b += kBlock) {
    VF acc = splat(0.0f), high_acc = splat(0.0f);
    for (std::int64_t i = b; i < b + kBlock; i += kW) {
      const VF v = exp2_weight_v((load(x + i) - mv) * cv);
      store(w + i, v);
      acc += v;
    }
    for (std::int64_t i = b; i < b + kBlock; i += kW) {
      const VF v = load(w + i);
      const VI high = v >= hiv;
      high_acc += (VF)((VI)v & high);
      k = compact_store(out, k, v, lane_mask((v >= lov) & ~high));
    }
    add_to(z, acc);
    add_to(above, high_acc);
  }
  FusedSums r;
  r.z = hsum_d(z);
  r.above = hsum_d(above);
  for (std::int64_t i = full; i < n; ++i) {
    const float v = exp2_weight((x[i] - m) * t_scale);
    w[i] = v;
    r.z += v;
    if (v >= hi_w) {
      r.above += v;
    } else if (v >= lo_w) {
      out[k++] = v;
    }
  }
  r.count = k;
  return r;
}

// ---------------------------------------------------------------- masses above a bound
// Sums and inverse CDFs over the weights above a bound: w >= bound (Strict =
// false: a top-p threshold) or w > bound (Strict = true: a rejection pivot).
template <bool Strict>
AIGC_VEC bool is_above(float v, float bound) {
  return Strict ? v > bound : v >= bound;
}

// The lanes of the mass of the weights above the bound in a whole block at b.
template <bool Strict>
AIGC_VEC VF block_lanes_above(const float* w, std::int64_t b, const VF& bv) {
  VF a = splat(0.0f);
  for (std::int64_t i = b; i < b + kBlock; i += kW) {
    const VF v = load(w + i);
    a += (VF)((VI)v & (Strict ? v > bv : v >= bv));
  }
  return a;
}

// The mass of the weights above the bound in [b, end): by lanes for a whole
// block of kBlock, else one by one.
template <bool Strict>
AIGC_VEC double block_mass_above(const float* w, std::int64_t b, std::int64_t end, float bound) {
  if (end - b < kBlock) {
    double s = 0.0;
    for (std::int64_t j = b; j < end; ++j) s += is_above<Strict>(w[j], bound) ? w[j] : 0.0f;
    return s;
  }
  VD d = {0.0, 0.0, 0.0, 0.0};
  add_to(d, block_lanes_above<Strict>(w, b, splat(bound)));
  return hsum_d(d);
}

template <bool Strict>
AIGC_VEC double total_above(const float* w, std::int64_t n, float bound) {
  const VF bv = splat(bound);
  VD t = {0.0, 0.0, 0.0, 0.0};
  const std::int64_t full = n - n % kBlock;
  for (std::int64_t b = 0; b < full; b += kBlock) add_to(t, block_lanes_above<Strict>(w, b, bv));
  return hsum_d(t) + block_mass_above<Strict>(w, full, n, bound);
}

// The inverse CDF over the positive weights above the bound, in token order:
// the first token whose running mass exceeds target, found block by block
// (each block's mass computed on the way); when rounding leaves target
// unreached, the last such token; -1 when there is none.
template <bool Strict>
AIGC_VEC std::int64_t draw_above_bound(const float* w, std::int64_t n, float bound, double target) {
  double acc = 0.0;
  std::int64_t last_block = -1;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t end = std::min(n, b + kBlock);
    const double bs = block_mass_above<Strict>(w, b, end, bound);
    if (bs <= 0.0) continue;
    last_block = b;
    if (acc + bs > target) {
      for (std::int64_t j = b; j < end; ++j) {
        const float v = w[j];
        if (v > 0.0f && is_above<Strict>(v, bound)) {
          acc += v;
          if (acc > target) return j;
        }
      }
      break;  // rounding between block and token sums
    }
    acc += bs;
  }
  if (last_block < 0) return -1;
  for (std::int64_t j = std::min(n, last_block + kBlock) - 1; j >= last_block; --j)
    if (w[j] > 0.0f && is_above<Strict>(w[j], bound)) return j;
  return -1;
}

// Total of the weights >= thr.
AIGC_CLONES double kept_mass(const float* w, std::int64_t n, float thr) {
  return total_above<false>(w, n, thr);
}

// Total of the weights > pivot.
AIGC_CLONES double mass_above(const float* w, std::int64_t n, float pivot) {
  return total_above<true>(w, n, pivot);
}

// The inverse CDF over the weights >= thr (see draw_above_bound).
AIGC_CLONES std::int64_t draw_thresholded(const float* w, std::int64_t n, float thr, double target) {
  return draw_above_bound<false>(w, n, thr, target);
}

// The inverse CDF over the weights > pivot (see draw_above_bound).
AIGC_CLONES std::int64_t draw_above(const float* w, std::int64_t n, float pivot, double target) {
  return draw_above_bound<true>(w, n, pivot, target);
}

// Top-p threshold and kept mass of a whole row of scores x with maximum m:
// fills w with the weights, returns the threshold, sets *kept to the mass of
// the weights >= it. tmp and spare hold n floats each, h 4 * kHist1 doubles.
float fused_top_p(const float* x, std::int64_t n, float m, float t_scale, double p, float* w,
                  float* tmp, float* spare, double* h, double* kept) {
  int lo = 0, hi = kHist1 - 1;
  sample_bracket(x, n, m, t_scale, p, tmp, h, &lo, &hi);
  const float lo_w = lo == 0 ? 0.0f : level1_floor(lo);
  const float hi_w = hi >= kHist1 - 1 ? kInf : level1_floor(hi + 1);
  const FusedSums f = weights_bracket_pass(x, n, m, t_scale, lo_w, hi_w, w, tmp);
  const double target = p * f.z;
  if (f.above < target) {
    bracket_hist(tmp, f.count, lo, hi, h);
    double inner = 0.0;
    const int b = crossing_bucket(h, hi, lo, target - f.above, &inner);
    if (b >= 0) {
      const std::int64_t cnt = gather_bucket1(tmp, f.count, static_cast<std::uint32_t>(b), spare);
      const float thr = refine_bucket(spare, cnt, target - f.above - inner);
      *kept = f.above + kept_mass(tmp, f.count, thr);
      return thr;
    }
  }
  // The crossing is outside the bracket: the general selection.
  const float thr = mass_threshold(w, n, target, tmp, f.z);
  *kept = kept_mass(w, n, thr);
  return thr;
}

// Kept mass per block: weights with w >= thr (top-p only: x is not read).
AIGC_CLONES void thresholded_block_sums(const float* w, std::int64_t n, float thr,
                                        double* block_sums) {
  for (std::int64_t b = 0, blk = 0; b < n; b += kBlock, ++blk)
    block_sums[blk] = block_mass_above<false>(w, b, std::min(n, b + kBlock), thr);
}

// Kept mass per block: weights with w >= thr and (x - m) * t_scale >= lmp.
AIGC_CLONES void masked_block_sums(const float* x, const float* w, std::int64_t n, float m,
                                   float t_scale, float thr, float lmp, double* block_sums) {
  const VF mv = splat(m), iv = splat(t_scale), tv = splat(thr), lv = splat(lmp);
  for (std::int64_t b = 0, blk = 0; b < n; b += kBlock, ++blk) {
    const std::int64_t len = std::min(kBlock, n - b);
    VF acc = splat(0.0f);
    std::int64_t i = 0;
    for (; i + kW <= len; i += kW) {
      const VF v = load(w + b + i);
      const VI keep = (v >= tv) & (((load(x + b + i) - mv) * iv) >= lv);
      acc += (VF)((VI)v & keep);
    }
    float tail = 0.0f;
    for (; i < len; ++i) {
      const float v = w[b + i];
      tail += (v >= thr && (x[b + i] - m) * t_scale >= lmp) ? v : 0.0f;
    }
    block_sums[blk] = static_cast<double>(hsum(acc)) + tail;
  }
}

// What the filters leave of a row, before the draw.
struct Plan {
  const float* x = nullptr;     // scores after penalties
  std::int64_t n = 0;
  bool greedy = false;
  std::int64_t greedy_index = 0;
  bool subset = false;          // candidates idx[0..count) (top-k) or the whole row
  std::int64_t count = 0;
  const std::int32_t* idx = nullptr;
  const float* w = nullptr;     // weight of candidate j (subset) or token j
  float m = 0.0f;
  float t_scale = 1.0f;           // log2(e) / temperature
  float thr_p = 0.0f;           // kept: w >= thr_p
  float log_min_p = -kInf;      // kept: (x - m) * t_scale >= log2(min_p)
  bool masked = false;          // top-p or min-p active
  double* block_sums = nullptr; // full row: kept mass per block of kBlock
  double kept_total = -1.0;     // full row, fused top-p: the kept mass (no block sums)
  bool reject_top_p = false;    // draw by rejection: top-p alone over the full row
  double top_p = 1.0;
  float* tmp = nullptr;         // n floats of scratch (the rejection draw's exact fallback)
};

inline bool kept_weight(const Plan& p, float x, float w) {
  return w >= p.thr_p && (x - p.m) * p.t_scale >= p.log_min_p;
}

// for_draw: the plan of a draw (sample), not of the distribution (filter):
// top-p alone over the whole row is then drawn by rejection (draw_top_p)
// without its threshold.
Plan plan_row(const float* logits, std::int64_t n, const SamplingParams& params,
              const std::int32_t* history, std::int64_t history_len, void* scratch, bool for_draw) {
  check_row_args(n, params, history, history_len);
  Scratch s = carve(scratch, n);
  Plan plan;
  plan.n = n;
  plan.x = logits;
  if (has_penalties(params) && history_len > 0) {
    apply_penalties(logits, n, params, history, history_len, s.row, s.idx);
    plan.x = s.row;
  }
  const float* x = plan.x;
  if (params.temperature == 0.0f) {
    const float m = checked_max(x, n);
    plan.greedy = true;
    plan.greedy_index = find_first(x, n, m);
    return plan;
  }
  plan.t_scale = log2_weight_scale(params.temperature);
  double z = 0.0;
  if (top_k_active(params, n)) {
    plan.subset = true;
    plan.count = top_k_candidates(x, n, params.top_k, s.tmp, s.idx, plan.m);
    if (plan.count < 0) throw_bad_row(x, n);
    plan.idx = s.idx;
    for (std::int64_t j = 0; j < plan.count; ++j) {
      const float w = exp2_weight((x[s.idx[j]] - plan.m) * plan.t_scale);
      s.w[j] = w;
      z += w;
    }
  } else {
    plan.m = checked_max(x, n);
    plan.count = n;
    if (for_draw && draw_top_p_by_rejection(params, n)) {
      weights_pass(x, n, plan.m, plan.t_scale, s.w, s.block_sums);
      plan.w = s.w;
      plan.block_sums = s.block_sums;
      plan.reject_top_p = true;
      plan.top_p = static_cast<double>(params.top_p);
      plan.tmp = s.tmp;
      return plan;
    }
    if (top_p_active(params) && !min_p_active(params) && n >= kFusedMinRow) {
      plan.w = s.w;
      plan.masked = true;
      plan.thr_p = fused_top_p(x, n, plan.m, plan.t_scale, static_cast<double>(params.top_p), s.w,
                               s.tmp, reinterpret_cast<float*>(s.idx), s.hist, &plan.kept_total);
      return plan;
    }
    z = weights_pass(x, n, plan.m, plan.t_scale, s.w, s.block_sums);
    plan.block_sums = s.block_sums;
  }
  plan.w = s.w;
  if (top_p_active(params)) {
    plan.thr_p = mass_threshold(s.w, plan.count, static_cast<double>(params.top_p) * z, s.tmp, z);
    plan.masked = true;
  }
  if (min_p_active(params)) {
    plan.log_min_p = static_cast<float>(std::log2(static_cast<double>(params.min_p)));
    plan.masked = true;
  }
  if (!plan.subset && plan.masked) {
    if (min_p_active(params))
      masked_block_sums(x, s.w, n, plan.m, plan.t_scale, plan.thr_p, plan.log_min_p, s.block_sums);
    else
      thresholded_block_sums(s.w, n, plan.thr_p, s.block_sums);
  }
  return plan;
}

std::int64_t draw_blocks(const Plan& p, double u);
std::int64_t draw_top_p(const Plan& p, const DrawKey& key);

std::int64_t draw(const Plan& p, const DrawKey& key) {
  if (p.greedy) return p.greedy_index;
  if (p.reject_top_p) return draw_top_p(p, key);
  const double u = draw_uniform(key.seed, key.stream, key.step);
  const float* x = p.x;
  if (p.subset) {
    double total = 0.0;
    for (std::int64_t j = 0; j < p.count; ++j)
      if (kept_weight(p, x[p.idx[j]], p.w[j])) total += p.w[j];
    const double target = u * total;
    double acc = 0.0;
    std::int64_t last = -1;
    for (std::int64_t j = 0; j < p.count; ++j) {
      const float w = p.w[j];
      if (w > 0.0f && kept_weight(p, x[p.idx[j]], w)) {
        acc += w;
        last = j;
        if (acc > target) return p.idx[j];
      }
    }
    return p.idx[last < 0 ? 0 : last];  // last >= 0: the maximum has weight 1 and is always kept
  }
  if (p.kept_total >= 0.0) {
    const std::int64_t i = draw_thresholded(p.w, p.n, p.thr_p, u * p.kept_total);
    if (i >= 0) return i;
  } else {
    const std::int64_t i = draw_blocks(p, u);
    if (i >= 0) return i;
  }
  for (std::int64_t i = p.n - 1; i >= 0; --i)
    if (p.w[i] > 0.0f && kept_weight(p, x[i], p.w[i])) return i;
  return 0;  // unreachable: the maximum has weight 1 and is always kept
}

// The inverse CDF by the kept mass per block: -1 when rounding leaves the
// target unreached.
std::int64_t draw_blocks(const Plan& p, double u) {
  const float* x = p.x;
  const std::int64_t blocks = (p.n + kBlock - 1) / kBlock;
  double total = 0.0;
  for (std::int64_t b = 0; b < blocks; ++b) total += p.block_sums[b];
  const double target = u * total;
  double acc = 0.0;
  std::int64_t last = -1;
  for (std::int64_t b = 0; b < blocks; ++b) {
    const double bs = p.block_sums[b];
    if (bs > 0.0 && acc + bs > target) {
      const std::int64_t end = std::min(p.n, (b + 1) * kBlock);
      for (std::int64_t i = b * kBlock; i < end; ++i) {
        const float w = p.w[i];
        if (w > 0.0f && kept_weight(p, x[i], w)) {
          acc += w;
          last = i;
          if (acc > target) return i;
        }
      }
      if (last >= 0) return last;  // rounding between block and element sums
    }
    acc += bs;
  }
  return -1;
}

// ---------------------------------------------------------------- top-p by rejection
// A draw from the top-p set S without its threshold (the idea of FlashInfer's
// pivot-based rejection sampling): draw a token i from the weights of the
// candidate set A (at first, every token); i is in S iff the mass of the
// weights above w_i is below p * Z, since S is every weight >= the largest
// value t whose mass(w >= t) reaches p * Z. If so, i is the draw: a draw
// from A ⊇ S that lands in S is a draw from S. If not, no weight <= w_i is
// in S, and the next round draws from A = {w > w_i} with a new uniform
// (draw_uniform_round). Each round costs two cheap passes over the weights
// (the draw, with block sums on the way, and the mass above w_i); a round
// accepts with probability mass(S) / mass(A) >= p, so it is used for
// p >= kRejectMinTopP (draw_top_p_by_rejection). After kRejectRounds
// rejections the threshold is computed exactly and the draw is made from S
// by inverse CDF, which keeps the distribution exact.

std::int64_t draw_top_p(const Plan& p, const DrawKey& key) {
  const float* w = p.w;
  const std::int64_t n = p.n;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  double z = 0.0;
  for (std::int64_t b = 0; b < blocks; ++b) z += p.block_sums[b];
  const double target = p.top_p * z;
  float pivot = -1.0f;  // every weight is above it
  double mass = z;
  for (int round = 0; round < kRejectRounds; ++round) {
    const double u = draw_uniform_round(key.seed, key.stream, key.step, round);
    // Round 0 draws from every weight: the block sums of the weights pass.
    std::int64_t i = round == 0 ? draw_blocks(p, u) : -1;
    if (i < 0) i = draw_above(w, n, pivot, u * mass);
    if (i < 0) break;  // unreachable: the maximum (1) is above every pivot
    const double above = mass_above(w, n, w[i]);
    if (above < target) return i;
    pivot = w[i];
    mass = above;
  }
  // kRejectRounds rejections: the exact threshold, then the inverse CDF over S.
  const float thr = mass_threshold(w, n, target, p.tmp, z);
  const double u = draw_uniform_round(key.seed, key.stream, key.step, kRejectRounds);
  const std::int64_t i = draw_thresholded(w, n, thr, u * kept_mass(w, n, thr));
  return i >= 0 ? i : 0;  // i >= 0: the maximum has weight 1 and is always kept
}

void write_filter(const Plan& p, float* probs, std::uint8_t* kept) {
  const std::int64_t n = p.n;
  if (probs) std::fill(probs, probs + n, 0.0f);
  if (kept) std::fill(kept, kept + n, std::uint8_t{0});
  if (p.greedy) {
    if (probs) probs[p.greedy_index] = 1.0f;
    if (kept) kept[p.greedy_index] = 1;
    return;
  }
  const float* x = p.x;
  double total = 0.0;
  if (p.subset) {
    for (std::int64_t j = 0; j < p.count; ++j)
      if (kept_weight(p, x[p.idx[j]], p.w[j])) total += p.w[j];
    for (std::int64_t j = 0; j < p.count; ++j) {
      const std::int32_t i = p.idx[j];
      if (!kept_weight(p, x[i], p.w[j])) continue;
      if (probs) probs[i] = static_cast<float>(p.w[j] / total);
      if (kept) kept[i] = 1;
    }
    return;
  }
  if (p.kept_total >= 0.0) {
    total = p.kept_total;
  } else {
    const std::int64_t blocks = (n + kBlock - 1) / kBlock;
    for (std::int64_t b = 0; b < blocks; ++b) total += p.block_sums[b];
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (x[i] == -kInf || !kept_weight(p, x[i], p.w[i])) continue;
    if (probs) probs[i] = static_cast<float>(p.w[i] / total);
    if (kept) kept[i] = 1;
  }
}

std::string row_prefix(std::int64_t r) { return "row " + std::to_string(r) + ": "; }

std::int64_t parallel_min_rows(std::int64_t n) {
  return std::max<std::int64_t>(1, (kParallelGrain + n - 1) / n);
}

void check_batch(const Batch& b) {
  if (b.rows < 0) throw std::invalid_argument("rows must be >= 0, got " + std::to_string(b.rows));
  if (b.n <= 0) throw std::invalid_argument("rows need at least one score, got n = " + std::to_string(b.n));
  if (b.rows > 0 && b.logits == nullptr) throw std::invalid_argument("logits is null");
  const BatchParams& p = b.params;
  if (!p.temperature || !p.top_k || !p.top_p || !p.min_p || !p.repetition_penalty ||
      !p.presence_penalty || !p.frequency_penalty)
    throw std::invalid_argument("every per-row parameter array must be given");
  if (b.history != nullptr && b.history_offsets == nullptr)
    throw std::invalid_argument("history given without history_offsets");
}

template <class RowFn>
void for_rows(const Batch& b, unsigned threads, RowFn&& fn) {
  check_batch(b);
  const std::size_t bytes = scratch_bytes(b.n);
  parallel_for(static_cast<std::size_t>(b.rows), threads,
               static_cast<std::size_t>(parallel_min_rows(b.n)),
               [&](std::size_t begin, std::size_t end) {
                 std::unique_ptr<unsigned char[]> scratch(new unsigned char[bytes]);
                 for (std::size_t r = begin; r < end; ++r) {
                   const auto row = static_cast<std::int64_t>(r);
                   const std::int32_t* hist = nullptr;
                   std::int64_t hist_len = 0;
                   if (b.history_offsets) {
                     const std::int64_t h0 = b.history_offsets[row], h1 = b.history_offsets[row + 1];
                     if (h0 < 0 || h1 < h0)
                       throw std::invalid_argument(row_prefix(row) + "bad history offsets [" +
                                                   std::to_string(h0) + ", " + std::to_string(h1) + ")");
                     hist = b.history ? b.history + h0 : nullptr;
                     hist_len = h1 - h0;
                   }
                   try {
                     fn(row, b.logits + row * b.row_stride, b.params.row(row), hist, hist_len,
                        scratch.get());
                   } catch (const std::invalid_argument& e) {
                     throw std::invalid_argument(row_prefix(row) + e.what());
                   }
                 }
               });
}

}  // namespace

SamplingParams BatchParams::row(std::int64_t r) const {
  SamplingParams p;
  p.temperature = temperature[r];
  p.top_k = top_k[r];
  p.top_p = top_p[r];
  p.min_p = min_p[r];
  p.repetition_penalty = repetition_penalty[r];
  p.presence_penalty = presence_penalty[r];
  p.frequency_penalty = frequency_penalty[r];
  return p;
}

std::size_t scratch_bytes(std::int64_t n) {
  if (n < 1) n = 1;
  const std::size_t fn = align64(static_cast<std::size_t>(n) * 4);
  return 64 + 4 * fn + block_bytes(n) + hist_bytes(n);
}

std::int32_t sample_row(const float* logits, std::int64_t n, const SamplingParams& params,
                        const std::int32_t* history, std::int64_t history_len, const DrawKey& key,
                        void* scratch) {
  const Plan plan = plan_row(logits, n, params, history, history_len, scratch, true);
  return static_cast<std::int32_t>(draw(plan, key));
}

void filter_row(const float* logits, std::int64_t n, const SamplingParams& params,
                const std::int32_t* history, std::int64_t history_len, void* scratch, float* probs,
                std::uint8_t* kept) {
  const Plan plan = plan_row(logits, n, params, history, history_len, scratch, false);
  write_filter(plan, probs, kept);
}

void penalize_row(const float* logits, std::int64_t n, const SamplingParams& params,
                  const std::int32_t* history, std::int64_t history_len, float* out) {
  check_row_args(n, params, history, history_len);
  std::unique_ptr<std::int32_t[]> counts(new std::int32_t[static_cast<std::size_t>(n)]);
  apply_penalties(logits, n, params, history, history_len, out, counts.get());
}

void sample_batch(const Batch& batch, const std::uint64_t* seeds, const std::uint64_t* streams,
                  const std::uint64_t* steps, std::int32_t* out, unsigned threads) {
  if (batch.rows > 0 && (!seeds || !streams || !steps || !out))
    throw std::invalid_argument("seeds, streams, steps and out must be given");
  for_rows(batch, threads,
           [&](std::int64_t r, const float* row, const SamplingParams& p, const std::int32_t* h,
               std::int64_t hl, void* scratch) {
             out[r] = sample_row(row, batch.n, p, h, hl, DrawKey{seeds[r], streams[r], steps[r]},
                                 scratch);
           });
}

void filter_batch(const Batch& batch, float* probs, std::uint8_t* kept, unsigned threads) {
  for_rows(batch, threads,
           [&](std::int64_t r, const float* row, const SamplingParams& p, const std::int32_t* h,
               std::int64_t hl, void* scratch) {
             filter_row(row, batch.n, p, h, hl, scratch, probs ? probs + r * batch.n : nullptr,
                        kept ? kept + r * batch.n : nullptr);
           });
}

double draw_uniform_of(const DrawKey& key) { return draw_uniform(key.seed, key.stream, key.step); }

void philox4x32_10_block(const std::uint32_t counter[4], const std::uint32_t key[2],
                         std::uint32_t out[4]) {
  Philox4 c{{counter[0], counter[1], counter[2], counter[3]}};
  Philox4 r = philox4x32_10(c, key[0], key[1]);
  for (int i = 0; i < 4; ++i) out[i] = r.v[i];
}

}  // namespace aigc::sampling
