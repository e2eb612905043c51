#pragma once
// Internal to csrc/sampling: what the row driver (row.cpp) and the kernels
// (the *.inc files, compiled once per instruction set by simd_levels.cpp)
// share: constants, the carved scratch space, the plan of a row, and the
// table of one instruction set's kernels.
#include <cstddef>
#include <cstdint>
#include <limits>

#include "sampling/sampling.hpp"

namespace aigc::sampling {

constexpr std::int64_t kBlock = 64;          // scores per block in full-row passes
constexpr std::int64_t kSortLimit = 512;     // candidates sorted outright in mass selection
constexpr int kHist1 = 4096;                 // level-1 buckets of the top-p radix selection
constexpr int kShift1 = 18;                  // level-1 digit: bits 29..18 of a weight
constexpr std::int64_t kFusedMinRow = 4096;  // rows that take the fused top-p pass
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Scratch {
  float* row;           // n: penalised copy of the row
  std::int32_t* idx;    // n: candidate ids; penalty counts before that
  float* w;             // n: weights
  float* tmp;           // n: heap, mass-selection buffer
  double* block_sums;   // n / kBlock + 1
  double* hist;         // 4 * kHist1 for rows of kFusedMinRow or more, else null
};

// The scratch space of sample_row (scratch_bytes(n) bytes) cut into its parts.
Scratch carve(void* scratch, std::int64_t n);

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
  float t_scale = 1.0f;         // log2(e) / temperature
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

// The kernels of one instruction set. None of them throws on bad input (the
// driver checks arguments first, and plan returns false for a row with a NaN,
// +inf or no finite score, for the driver to report).
struct SimdKernels {
  const char* name;
  // The plan of the checked row x (penalties applied). for_draw: the plan of
  // a draw (sample), not of the distribution (filter): top-p alone over the
  // whole row is then drawn by rejection without its threshold.
  bool (*plan)(const float* x, std::int64_t n, const SamplingParams& params, const Scratch& s,
               bool for_draw, Plan* plan);
  std::int64_t (*draw)(const Plan& plan, const DrawKey& key);
  void (*write_filter)(const Plan& plan, float* probs, std::uint8_t* kept);
};

// The instruction sets compiled in, best first, and whether this CPU runs them.
struct SimdLevel {
  const SimdKernels* kernels;
  bool (*supported)();
};
extern const SimdLevel kSimdLevels[];
extern const int kSimdLevelCount;

// The kernels this process uses, chosen once (see simd_level in sampling.hpp).
const SimdKernels& simd_kernels();

}  // namespace aigc::sampling
