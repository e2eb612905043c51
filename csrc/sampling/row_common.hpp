#pragma once
// Per-row arithmetic shared by the CPU sampler (csrc/sampling) and the CUDA
// kernels (csrc/cuda/sampling_kernels.cu): the counter-based generator, the
// exponential used for every probability weight, the penalty formula, the
// parameter checks and the order-preserving float keys. Everything here is a
// plain function of its arguments (no state), callable from host and device.
#include <cstdint>
#include <cstring>

#include "sampling/sampling.hpp"

#if defined(__CUDACC__)
#define AIGC_HD __host__ __device__ __forceinline__
#else
#define AIGC_HD inline
#endif

namespace aigc::sampling {

constexpr float kFloatMax = 3.402823466e+38f;

// ---------------------------------------------------------------- Philox4x32-10
// Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11); the
// constants and round structure of Random123's philox4x32 with 10 rounds.
struct Philox4 {
  std::uint32_t v[4];
};

AIGC_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

AIGC_HD Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kM0, ctr.v[0], hi0, lo0);
    mulhilo32(kM1, ctr.v[2], hi1, lo1);
    Philox4 next;
    next.v[0] = hi1 ^ ctr.v[1] ^ k0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ ctr.v[3] ^ k1;
    next.v[3] = lo0;
    ctr = next;
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

// The Philox block of a draw: key = seed, counter = (stream, step).
AIGC_HD Philox4 draw_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t step) {
  Philox4 ctr{{static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32),
               static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(step >> 32)}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// The uniform number in [0, 1) (53 random bits) of a draw.
AIGC_HD double draw_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t step) {
  Philox4 r = draw_block(seed, stream, step);
  std::uint64_t bits = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// The uniform number of round r of a draw: round 0 is draw_uniform; later
// rounds (the top-p rejection draw) key Philox with the seed mixed with r.
AIGC_HD double draw_uniform_round(std::uint64_t seed, std::uint64_t stream, std::uint64_t step,
                                  int round) {
  return draw_uniform(seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(round)), stream,
                      step);
}

// Rounds of the top-p rejection draw before the exact threshold is computed.
constexpr int kRejectRounds = 4;

// ---------------------------------------------------------------- float helpers
AIGC_HD std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint32_t>(__float_as_uint(f));
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

AIGC_HD float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// An unsigned key with the order of the float (for non-NaN values; -0 < +0).
AIGC_HD std::uint32_t ordered_key(float f) {
  std::uint32_t u = float_bits(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

AIGC_HD float key_float(std::uint32_t k) {
  return bits_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

AIGC_HD bool is_nan(float f) { return !(f == f); }

// 2^t for t <= 0, as float32: t clamped to [-127, 0] (-inf and NaN give -127),
// t = n + f with n the nearest integer (by the 1.5 * 2^23 rounding trick) and
// f in [-1/2, 1/2], 2^f by a degree-5 polynomial fitted for least maximum
// relative error with the constant term fixed at 1 (relative error about
// 1.9e-7 in float32 arithmetic, as good as the degree-6 Taylor polynomial),
// times 2^n built in the exponent bits; n = -127 builds the bits of +0, so
// weights below about 2^-126.5 are 0 without a separate test. Exactly 1 at
// t = 0. Branch-free, so that compilers vectorise loops over it; the same
// operations on host and device (no fused multiply-adds: built with
// --fmad=false for CUDA) give the CPU and CUDA samplers identical weights.
constexpr float kMinLog2Weight = -127.0f;
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
constexpr std::uint32_t kRoundMagicBits = 0x4B400000u;
constexpr float kC1 = 0.693147003650665283f;
constexpr float kC2 = 0.240222424268722534f;
constexpr float kC3 = 0.0555073358118534088f;
constexpr float kC4 = 0.00967145897448062897f;
constexpr float kC5 = 0.00132645689882338047f;

AIGC_HD float exp2_weight(float t) {
  t = t > kMinLog2Weight ? t : kMinLog2Weight;
  const float shifted = t + kRoundMagic;
  const float n = shifted - kRoundMagic;
  const float f = t - n;
  float p = kC5;
  p = p * f + kC4;
  p = p * f + kC3;
  p = p * f + kC2;
  p = p * f + kC1;
  p = p * f + 1.0f;
  const std::uint32_t e = (float_bits(shifted) - (kRoundMagicBits - 127u)) << 23;
  return p * bits_float(e);
}

// ---------------------------------------------------------------- penalties
// The penalised logit of a token seen `count` > 0 times in the history:
// repetition (HF / vLLM: positive logits divided, others multiplied, once per
// distinct token), then frequency (count * frequency) and presence (once)
// subtracted (OpenAI). Overflow to +inf saturates at the largest float.
AIGC_HD float penalised_logit(float x, std::int64_t count, float repetition, float presence,
                              float frequency) {
  if (count <= 0) return x;
  if (repetition != 1.0f) x = x > 0.0f ? x / repetition : x * repetition;
  x = x - static_cast<float>(count) * frequency - presence;
  return x > kFloatMax ? kFloatMax : x;
}

AIGC_HD bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

// ---------------------------------------------------------------- parameter checks
enum ParamError : int {
  kParamOk = 0,
  kBadTemperature = 1,
  kBadTopP = 2,
  kBadMinP = 3,
  kBadRepetition = 4,
  kBadPresence = 5,
  kBadFrequency = 6,
};

AIGC_HD bool is_finite(float f) { return f == f && f <= kFloatMax && f >= -kFloatMax; }

AIGC_HD int check_params(const SamplingParams& p) {
  if (!is_finite(p.temperature) || p.temperature < 0.0f) return kBadTemperature;
  if (is_nan(p.top_p) || p.top_p <= 0.0f) return kBadTopP;
  if (is_nan(p.min_p) || p.min_p > 1.0f) return kBadMinP;
  if (!is_finite(p.repetition_penalty) || p.repetition_penalty <= 0.0f) return kBadRepetition;
  if (!is_finite(p.presence_penalty)) return kBadPresence;
  if (!is_finite(p.frequency_penalty)) return kBadFrequency;
  return kParamOk;
}

// Effective switches of a row of n scores.
AIGC_HD bool top_k_active(const SamplingParams& p, std::int64_t n) {
  return p.top_k > 0 && static_cast<std::int64_t>(p.top_k) < n;
}
AIGC_HD bool top_p_active(const SamplingParams& p) { return p.top_p < 1.0f; }
AIGC_HD bool min_p_active(const SamplingParams& p) { return p.min_p > 0.0f; }

// A draw with top-p alone (no top-k, no min-p) and p >= kRejectMinTopP is
// made by rejection (each round accepts with probability >= p), not by the
// exact threshold; both give the same distribution.
constexpr float kRejectMinTopP = 0.5f;
AIGC_HD bool draw_top_p_by_rejection(const SamplingParams& p, std::int64_t n) {
  return top_p_active(p) && p.top_p >= kRejectMinTopP && !top_k_active(p, n) && !min_p_active(p);
}

// The factor c = log2(e) / temperature of the base-2 log-weight of a token,
// t = (x - max) * c, so that its weight is exp2_weight(t) = exp((x - max) / T).
// Saturated at the largest float, so a tiny temperature never gives 0 * inf.
AIGC_HD float log2_weight_scale(float temperature) {
  const double c = 1.4426950408889634 / static_cast<double>(temperature);
  return c > static_cast<double>(kFloatMax) ? kFloatMax : static_cast<float>(c);
}

}  // namespace aigc::sampling
