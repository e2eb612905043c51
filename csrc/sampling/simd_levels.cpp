// The sampler's kernels once per instruction set, and the choice among them.
//
// x86-64: SSE2 (the baseline), AVX2 and AVX-512 (F, VL, BW, DQ) builds of the
// same source (kernels.inc), each under `#pragma GCC target`, so one binary
// runs everywhere and uses the widest set the CPU has. The arithmetic is the
// same operations lane by lane in the same order in each (no FMA:
// -ffp-contract=off; sums over 8 lanes in one order, also where a level
// computes lane-wise results 16 at a time, kWide), so every level gives the
// same bits; tests/test_sampling_simd.py compares them. The level is chosen once, at the first row sampled: the best
// one the CPU supports, or the one named by the environment variable
// AIGC_SAMPLING_SIMD (sse2, avx2, avx512) where the CPU supports it (for
// tests and comparisons). Elsewhere: one generic build.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sampling/row_common.hpp"
#include "sampling/row_plan.hpp"
#include "sampling/sampling.hpp"
#include "sampling/simd.hpp"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define AIGC_X86_LEVELS 1
#include <immintrin.h>
#else
#define AIGC_X86_LEVELS 0
#endif

namespace aigc::sampling {

namespace simd_base {
namespace {
constexpr bool kWide = false;  // 8 lanes (two SSE2 registers)
constexpr bool kSplit = AIGC_X86_LEVELS;  // 8-lane comparisons as two halves
AIGC_VEC VF vmax_l(const VF& a, const VF& b) { return vmax<kSplit>(a, b); }
AIGC_VEC VF16 vmax_l(const VF16& a, const VF16& b) { return vmax(a, b); }
#include "sampling/kernels.inc"
}  // namespace
const SimdKernels kKernels = {AIGC_X86_LEVELS ? "sse2" : "generic", &plan_row, &draw,
                              &write_filter};
}  // namespace simd_base

#if AIGC_X86_LEVELS
#pragma GCC push_options
#pragma GCC target("avx2")
namespace simd_avx2 {
namespace {
// 8 lanes: GCC's code for 16-lane vectors on AVX2 (two registers) ran 2.5 to 3
// times slower here (Zen 1) than 8-lane code, with the same bits.
constexpr bool kWide = false;
constexpr bool kSplit = false;
// maxps(a, b) is a > b ? a : b (b where unordered or equal): one instruction.
AIGC_VEC VF vmax_l(const VF& a, const VF& b) { return (VF)_mm256_max_ps((__m256)a, (__m256)b); }
AIGC_VEC VF16 vmax_l(const VF16& a, const VF16& b) { return vmax(a, b); }
#include "sampling/kernels.inc"
}  // namespace
const SimdKernels kKernels = {"avx2", &plan_row, &draw, &write_filter};
}  // namespace simd_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq")
namespace simd_avx512 {
namespace {
// Lane-wise work 16 lanes at a time (one zmm register): the weights' exp2,
// the row maximum, the top-k block filter. The 16-lane source was checked
// bit for bit against the 8-lane one by building it for AVX2.
constexpr bool kWide = true;
constexpr bool kSplit = false;
AIGC_VEC VF vmax_l(const VF& a, const VF& b) { return (VF)_mm256_max_ps((__m256)a, (__m256)b); }
// 16 lanes by compare and blend: GCC 12's _mm512_max_ps trips
// -Wmaybe-uninitialized in its own header (at -O1, the sanitizer build).
AIGC_VEC VF16 vmax_l(const VF16& a, const VF16& b) { return vmax(a, b); }
#include "sampling/kernels.inc"
}  // namespace
const SimdKernels kKernels = {"avx512", &plan_row, &draw, &write_filter};
}  // namespace simd_avx512
#pragma GCC pop_options
#endif

namespace {

bool always() { return true; }

#if AIGC_X86_LEVELS
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}
#endif

const SimdKernels& choose() {
  const char* want = std::getenv("AIGC_SAMPLING_SIMD");
  const SimdLevel* best = nullptr;
  for (int i = 0; i < kSimdLevelCount; ++i) {
    const SimdLevel& level = kSimdLevels[i];
    if (!level.supported()) continue;
    if (best == nullptr) best = &level;
    if (want != nullptr && std::strcmp(want, level.kernels->name) == 0) return *level.kernels;
  }
  return *best->kernels;  // the last level is the baseline, always supported
}

}  // namespace

const SimdLevel kSimdLevels[] = {
#if AIGC_X86_LEVELS
    {&simd_avx512::kKernels, &has_avx512},
    {&simd_avx2::kKernels, &has_avx2},
#endif
    {&simd_base::kKernels, &always},
};
const int kSimdLevelCount = static_cast<int>(sizeof kSimdLevels / sizeof kSimdLevels[0]);

const SimdKernels& simd_kernels() {
  static const SimdKernels& chosen = choose();
  return chosen;
}

const char* simd_level() { return simd_kernels().name; }

std::vector<std::pair<std::string, bool>> simd_levels() {
  std::vector<std::pair<std::string, bool>> out;
  for (int i = 0; i < kSimdLevelCount; ++i)
    out.emplace_back(kSimdLevels[i].kernels->name, kSimdLevels[i].supported());
  return out;
}

}  // namespace aigc::sampling
