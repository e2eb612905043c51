// The row driver of the CPU sampler: argument checks and their errors, the
// penalties, the scratch layout, and sample_row / filter_row / penalize_row
// over the kernels of the instruction set in use (simd_levels.cpp).
//
// No full sort. A row is read once for its maximum (or, with top-k, once for
// a running lower bound of the k-th largest score, raised by a selection over
// the scores above it every k candidates, skipping 64-score blocks whose
// maximum is below it: top_k.inc); every later step works only on the
// surviving candidates. The top-p threshold is a selection by mass (top_p.inc):
// a radix histogram over the float bits of the weights (ties stay together),
// built exactly only for a bracket found from a sample (checked, with retries
// and a full-histogram fallback), refined by two more radix levels, and a sort
// only for the last few hundred candidates. The draw (draw.inc) is an inverse
// CDF in token order, or rejection rounds for top-p alone.
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "sampling/row_common.hpp"
#include "sampling/row_plan.hpp"
#include "sampling/sampling.hpp"

namespace aigc::sampling {
namespace {

std::size_t align64(std::size_t x) { return (x + 63) & ~static_cast<std::size_t>(63); }

// Bytes of one double per block (and one more), and of the fused top-p
// histograms (rows of kFusedMinRow scores or more only).
std::size_t block_bytes(std::int64_t n) {
  return align64((static_cast<std::size_t>(n) / kBlock + 1) * sizeof(double));
}
std::size_t hist_bytes(std::int64_t n) {
  return n >= kFusedMinRow ? 4 * kHist1 * sizeof(double) : 0;
}

}  // namespace

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

namespace {

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

// The row after the penalties (s.row, or the logits themselves without any).
const float* penalised(const float* logits, std::int64_t n, const SamplingParams& params,
                       const std::int32_t* history, std::int64_t history_len, const Scratch& s) {
  if (!has_penalties(params) || history_len == 0) return logits;
  apply_penalties(logits, n, params, history, history_len, s.row, s.idx);
  return s.row;
}

Plan plan_row(const float* logits, std::int64_t n, const SamplingParams& params,
              const std::int32_t* history, std::int64_t history_len, void* scratch, bool for_draw,
              const SimdKernels& k) {
  check_row_args(n, params, history, history_len);
  const Scratch s = carve(scratch, n);
  const float* x = penalised(logits, n, params, history, history_len, s);
  Plan plan;
  if (!k.plan(x, n, params, s, for_draw, &plan)) throw_bad_row(x, n);
  return plan;
}

}  // namespace

std::size_t scratch_bytes(std::int64_t n) {
  if (n < 1) n = 1;
  const std::size_t fn = align64(static_cast<std::size_t>(n) * 4);
  return 64 + 4 * fn + block_bytes(n) + hist_bytes(n);
}

std::int32_t sample_row(const float* logits, std::int64_t n, const SamplingParams& params,
                        const std::int32_t* history, std::int64_t history_len, const DrawKey& key,
                        void* scratch) {
  const SimdKernels& k = simd_kernels();
  const Plan plan = plan_row(logits, n, params, history, history_len, scratch, true, k);
  return static_cast<std::int32_t>(k.draw(plan, key));
}

void filter_row(const float* logits, std::int64_t n, const SamplingParams& params,
                const std::int32_t* history, std::int64_t history_len, void* scratch, float* probs,
                std::uint8_t* kept) {
  const SimdKernels& k = simd_kernels();
  const Plan plan = plan_row(logits, n, params, history, history_len, scratch, false, k);
  k.write_filter(plan, probs, kept);
}

void penalize_row(const float* logits, std::int64_t n, const SamplingParams& params,
                  const std::int32_t* history, std::int64_t history_len, float* out) {
  check_row_args(n, params, history, history_len);
  std::unique_ptr<std::int32_t[]> counts(new std::int32_t[static_cast<std::size_t>(n)]);
  apply_penalties(logits, n, params, history, history_len, out, counts.get());
}

double draw_uniform_of(const DrawKey& key) { return draw_uniform(key.seed, key.stream, key.step); }

void philox4x32_10_block(const std::uint32_t counter[4], const std::uint32_t key[2],
                         std::uint32_t out[4]) {
  Philox4 c{{counter[0], counter[1], counter[2], counter[3]}};
  Philox4 r = philox4x32_10(c, key[0], key[1]);
  for (int i = 0; i < 4; ++i) out[i] = r.v[i];
}

}  // namespace aigc::sampling
