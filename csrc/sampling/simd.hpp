#pragma once
// The vector layer of the CPU sampler: GCC/Clang vector extensions of 8
// lanes (8 floats, 8 int32 or 4 doubles), the lane-wise exp2 of the weights,
// lane masks and the compaction table. Every helper is always_inline, so it
// is compiled with the instruction set of the kernel that inlines it: the
// kernels (the *.inc files) are compiled once per instruction set by
// simd_levels.cpp, and the arithmetic of a lane is the same operations in the
// same order in each (no FMA: the sampler is built with -ffp-contract=off),
// so SSE2, AVX2 and AVX-512 code give the same bits as the scalar functions
// of row_common.hpp, and a draw does not depend on the machine.
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "sampling/row_common.hpp"

namespace aigc::sampling {

// The helpers pass 32-byte vectors between inlined functions only, so GCC's
// note about the AVX calling convention is moot.
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
// Broadcasts by a shuffle: GCC 12 builds a vector written {f, f, ...} lane by
// lane where it is inlined, inside loops too; a shuffle is one vbroadcastss.
AIGC_VEC VF splat(float f) {
  const VF v = {f};
  return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0);
}
AIGC_VEC VI splati(std::int32_t i) {
  const VI v = {i};
  return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0);
}

// Comparisons of 8-lane vectors (lane masks of 0 or -1). Split (the SSE2
// level, kSplit): as two 4-lane halves, since GCC lowers an 8-lane comparison
// to scalar code, lane by lane, for SSE2; else one vector comparison. Same
// masks either way.
typedef float VF4 __attribute__((vector_size(16)));
typedef std::int32_t VI4 __attribute__((vector_size(16)));
template <class V>
struct Half;
template <>
struct Half<VF> {
  typedef VF4 type;
};
template <>
struct Half<VI> {
  typedef VI4 type;
};

#define AIGC_COMPARE(name, op)                                                      \
  template <bool Split, class V>                                                    \
  AIGC_VEC VI name(const V& a, const V& b) {                                        \
    if constexpr (Split) {                                                          \
      typedef typename Half<V>::type H;                                             \
      H h[4];                                                                       \
      std::memcpy(&h[0], &a, sizeof a);                                             \
      std::memcpy(&h[2], &b, sizeof b);                                             \
      const VI4 r[2] = {h[0] op h[2], h[1] op h[3]};                                \
      VI out;                                                                       \
      std::memcpy(&out, r, sizeof out);                                             \
      return out;                                                                   \
    } else {                                                                        \
      return a op b;                                                                \
    }                                                                               \
  }
AIGC_COMPARE(cmp_gt, >)
AIGC_COMPARE(cmp_ge, >=)
AIGC_COMPARE(cmp_lt, <)
AIGC_COMPARE(cmp_eq, ==)
AIGC_COMPARE(cmp_ne, !=)
#undef AIGC_COMPARE

// a > b ? a : b (vmax) and a < b ? a : b (vmin) lane by lane, by bit
// operations: GCC lowers a ?: of 8-lane vectors lane by lane (scalar code)
// for SSE2. The same values, NaN lanes included.
// (Split: the halves by shuffles here, which GCC handled better than the
// copies of cmp_* in the weights pass, and worse in the top-k scan.)
template <bool Split>
AIGC_VEC VF vmax(const VF& a, const VF& b) {
  VI m;
  if constexpr (Split) {
    const VF4 a0 = __builtin_shufflevector(a, a, 0, 1, 2, 3);
    const VF4 a1 = __builtin_shufflevector(a, a, 4, 5, 6, 7);
    const VF4 b0 = __builtin_shufflevector(b, b, 0, 1, 2, 3);
    const VF4 b1 = __builtin_shufflevector(b, b, 4, 5, 6, 7);
    const VI4 r0 = a0 > b0, r1 = a1 > b1;
    m = __builtin_shufflevector(r0, r1, 0, 1, 2, 3, 4, 5, 6, 7);
  } else {
    m = a > b;
  }
  return (VF)(((VI)a & m) | ((VI)b & ~m));
}
template <bool Split>
AIGC_VEC VF vmin(const VF& a, const VF& b) {
  const VI m = cmp_lt<Split>(a, b);
  return (VF)(((VI)a & m) | ((VI)b & ~m));
}


// 16-lane vectors, for the levels whose kernels compute lane-wise results
// (weights, comparisons) two 8-lane vectors at a time (kWide in
// simd_levels.cpp); their sums are still taken 8 lanes at a time, in the
// 8-lane order (lo8 then hi8), so the bits do not change.
typedef float VF16 __attribute__((vector_size(64)));
typedef std::int32_t VI16 __attribute__((vector_size(64)));

AIGC_VEC VF16 load16(const float* p) {
  VF16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
AIGC_VEC void store16(float* p, const VF16& v) { std::memcpy(p, &v, sizeof v); }
AIGC_VEC VF16 splat16(float f) {
  const VF16 v = {f};
  return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}
AIGC_VEC VI16 splati16(std::int32_t i) {
  const VI16 v = {i};
  return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}
AIGC_VEC VF lo8(const VF16& v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
AIGC_VEC VF hi8(const VF16& v) {
  return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
}

AIGC_VEC VI lo8(const VI16& v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7); }
AIGC_VEC VI hi8(const VI16& v) {
  return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
}

AIGC_VEC VF16 vmax(const VF16& a, const VF16& b) {
  const VI16 m = a > b;
  return (VF16)(((VI16)a & m) | ((VI16)b & ~m));
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
inline constexpr CompressTable kCompress;

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

}  // namespace aigc::sampling
