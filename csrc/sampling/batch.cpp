// Batches of rows: checks, per-row parameters and history, rows spread over
// threads (the result does not depend on their number).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "parallel.hpp"
#include "sampling/sampling.hpp"

namespace aigc::sampling {
namespace {

constexpr std::int64_t kParallelGrain = 1 << 15;  // scores per thread at least

std::string row_prefix(std::int64_t r) { return "row " + std::to_string(r) + ": "; }

std::int64_t parallel_min_rows(std::int64_t n) {
  return std::max<std::int64_t>(1, (kParallelGrain + n - 1) / n);
}

void check_batch(const Batch& b) {
  if (b.rows < 0) throw std::invalid_argument("rows must be >= 0, got " + std::to_string(b.rows));
  if (b.n <= 0) throw std::invalid_argument("rows need at least one score, got n = " + std::to_string(b.n));
  if (b.rows > 0 && b.logits == nullptr) throw std::invalid_argument("logits is null");
  if (b.rows > 0 && b.params == nullptr) throw std::invalid_argument("params is null");
  if (b.params_stride != 0 && b.params_stride != 1)
    throw std::invalid_argument("params_stride must be 0 (one for every row) or 1, got " +
                                std::to_string(b.params_stride));
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
                     fn(row, b.logits + row * b.row_stride, b.row_params(row), hist, hist_len,
                        scratch.get());
                   } catch (const std::invalid_argument& e) {
                     throw std::invalid_argument(row_prefix(row) + e.what());
                   }
                 }
               });
}

}  // namespace

void sample_batch(const Batch& batch, const BatchKeys& keys, std::int32_t* out, unsigned threads) {
  if (batch.rows > 0 && !out) throw std::invalid_argument("out must be given");
  for_rows(batch, threads,
           [&](std::int64_t r, const float* row, const SamplingParams& p, const std::int32_t* h,
               std::int64_t hl, void* scratch) {
             out[r] = sample_row(row, batch.n, p, h, hl, keys.row(r), scratch);
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

}  // namespace aigc::sampling
