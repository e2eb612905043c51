#pragma once
// Per-row arithmetic shared by the CPU sampler (sampling.cpp) and the CUDA
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
// Below this scaled log-weight (relative to the row maximum) a weight is
// flushed to zero: exp(-87.33) is the smallest normal float32.
constexpr float kMinLogWeight = -87.33654f;

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

// exp(s) for s <= 0, as float32: a range reduction to [-ln2/2, ln2/2] and a
// degree-6 polynomial (max relative error about 2e-7), exactly 1 at s = 0 and
// flushed to 0 below kMinLogWeight (also for s = -inf). Written branch-free so
// that compilers vectorise loops over it; the same function on host and device
// keeps the CPU and CUDA weights identical up to fused multiply-adds.
AIGC_HD float exp_weight(float s) {
  const bool zero = !(s >= kMinLogWeight);
  s = zero ? 0.0f : s;
  const float n = static_cast<float>(static_cast<int>(s * 1.44269504088896341f - 0.5f));
  // n = round-to-nearest of s*log2(e) for s <= 0 (truncation towards zero of x - 0.5).
  float r = s - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t e = static_cast<std::int32_t>(n) + 127;  // in [1, 127] here
  const float scale = bits_float(static_cast<std::uint32_t>(e) << 23);
  const float w = p * scale;
  return zero ? 0.0f : w;
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

// The scaled log-weight (x - max) / temperature, computed as a product with
// the reciprocal (saturated so that a tiny temperature never gives 0 * inf).
AIGC_HD float inverse_temperature(float temperature) {
  float inv = 1.0f / temperature;
  return inv > kFloatMax ? kFloatMax : inv;
}

}  // namespace aigc::sampling
