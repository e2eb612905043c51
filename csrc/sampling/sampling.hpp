#pragma once
// The shared token sampler: the contract every text generator uses.
//
// This header is the interface between the sampling core (csrc/sampling) and
// its users (the n-gram generation loop, the bindings, the CUDA kernels). The
// sampling work implements it; signatures here are fixed, additions are fine.
#include <cstdint>

namespace aigc::sampling {

// Parameters of one row. Order of application: penalties, temperature, top-k,
// top-p (on the top-k-renormalised distribution), min-p, then one draw.
// Off switches: top_k <= 0 or >= vocab, top_p >= 1, min_p <= 0,
// repetition_penalty == 1, presence/frequency == 0. temperature == 0: greedy.
struct SamplingParams {
  float temperature = 1.0f;
  std::int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
};

// Where the randomness of one draw comes from: a counter-based generator keyed
// by (seed, stream) and advanced by step, so a draw depends on these three
// values only (not on threads, batch size or position in a batch).
struct DrawKey {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t step = 0;
};

// Samples one index in [0, n) from a row of n unnormalised natural-log scores
// (logits; -inf = impossible). `history` (may be null when history_len == 0)
// lists earlier token ids for the penalties, in the same index space as the
// row. `scratch` must hold at least n floats and n int32s worth of space as
// given by scratch_bytes(n); it is overwritten. Throws std::invalid_argument
// for NaN scores, a row with no finite score, and invalid parameters.
std::int32_t sample_row(const float* logits, std::int64_t n, const SamplingParams& params,
                        const std::int32_t* history, std::int64_t history_len,
                        const DrawKey& key, void* scratch);

// Bytes of scratch space sample_row needs for a row of n scores.
std::size_t scratch_bytes(std::int64_t n);

}  // namespace aigc::sampling
