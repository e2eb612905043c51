#pragma once
// The shared token sampler: the contract every text generator uses.
//
// This header is the interface between the sampling core (csrc/sampling) and
// its users (the n-gram generation loop, the bindings, the CUDA kernels). The
// sampling work implements it; signatures here are fixed, additions are fine
// (issue 15 changed one: batches take packed parameters and keys).
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
static_assert(std::is_standard_layout<SamplingParams>::value && sizeof(SamplingParams) == 28,
              "SamplingParams is the packed parameter layout of every face: 7 x 4 bytes");

// Where the randomness of one draw comes from: a counter-based generator keyed
// by (seed, stream) and advanced by step, so a draw depends on these three
// values only (not on threads, batch size or position in a batch).
struct DrawKey {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t step = 0;
};
static_assert(std::is_standard_layout<DrawKey>::value && sizeof(DrawKey) == 24,
              "DrawKey: three uint64 values");

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

// History semantics (sample_row and the batched calls): negative ids are
// padding and ignored; an id >= n is an error (std::invalid_argument).

// Writes the distribution sample_row draws from: probs[i] = the probability of
// token i after all filters (0 outside the kept set), and kept[i] = 1 for the
// tokens of the kept set (finite, surviving top-k, top-p and min-p), else 0.
// Either output may be null. Same errors as sample_row.
void filter_row(const float* logits, std::int64_t n, const SamplingParams& params,
                const std::int32_t* history, std::int64_t history_len, void* scratch,
                float* probs, std::uint8_t* kept);

// The logits after the penalties only (for inspection and tests).
void penalize_row(const float* logits, std::int64_t n, const SamplingParams& params,
                  const std::int32_t* history, std::int64_t history_len, float* out);

// A batch of `rows` rows of n scores, row r at logits + r * row_stride.
// The parameters of row r are params[r * params_stride] (params_stride 0:
// one SamplingParams for every row): the packed layout that the bindings,
// the CUDA kernels and the Python faces share (aigc_engine.sampling.PARAMS_DTYPE
// is derived from this struct).
// History in CSR form: the ids of row r are history[history_offsets[r] ..
// history_offsets[r + 1]); history and history_offsets may both be null.
struct Batch {
  const float* logits = nullptr;
  std::int64_t rows = 0;
  std::int64_t n = 0;
  std::int64_t row_stride = 0;
  const SamplingParams* params = nullptr;
  std::int64_t params_stride = 1;
  const std::int32_t* history = nullptr;
  const std::int64_t* history_offsets = nullptr;
  const SamplingParams& row_params(std::int64_t r) const { return params[r * params_stride]; }
};

// One part of the draw keys of a batch: `value` for every row, or values[r]
// where values is not null.
struct KeyColumn {
  std::uint64_t value = 0;
  const std::uint64_t* values = nullptr;
  std::uint64_t at(std::int64_t r) const { return values ? values[r] : value; }
};

struct BatchKeys {
  KeyColumn seed, stream, step;
  DrawKey row(std::int64_t r) const { return DrawKey{seed.at(r), stream.at(r), step.at(r)}; }
};

// Draws one token per row into out[rows]: the draw of row r is keyed by
// keys.row(r). Rows are spread over up to `threads` threads (0 = hardware
// concurrency); the result does not depend on it. An error in any row
// (std::invalid_argument naming the row) fails the call.
void sample_batch(const Batch& batch, const BatchKeys& keys, std::int32_t* out, unsigned threads);

// filter_row over a batch; probs and kept (rows x n, row-major, may be null).
void filter_batch(const Batch& batch, float* probs, std::uint8_t* kept, unsigned threads);

// Penalties from counts kept by the caller (the decoding loop keeps them
// incrementally): for each of the `len` distinct ids, row[id] becomes
// penalised_logit(row[id], counts[id], ...), the formula the sampler applies
// to a history. `counts` is indexed by token id (n entries). In place; throws
// std::invalid_argument for an id outside [0, n) and for invalid penalties.
void penalize_counts(float* row, std::int64_t n, const std::int32_t* ids, std::int64_t len,
                     const std::int32_t* counts, float repetition, float presence,
                     float frequency);

// The uniform number in [0, 1) a draw with this key uses (for tests).
double draw_uniform_of(const DrawKey& key);

// The instruction set of the CPU kernels in use: "avx512", "avx2", "sse2"
// (x86-64) or "generic". Chosen once per process: the best one the CPU runs,
// or the one the environment variable AIGC_SAMPLING_SIMD names if it runs
// here. Every level gives the same bits.
const char* simd_level();

// Every level compiled in, best first, with whether this CPU runs it.
std::vector<std::pair<std::string, bool>> simd_levels();

// The raw Philox4x32-10 block for a counter and key (known-answer tests).
void philox4x32_10_block(const std::uint32_t counter[4], const std::uint32_t key[2],
                         std::uint32_t out[4]);

}  // namespace aigc::sampling
