#pragma once
// Next-token candidates and the generation loop of an n-gram model.
//
// Exact top-k without the full distribution: after a context with suffix
// nodes c_1..c_K (longest last), a word w's log10 score is
//   s_j(w) = p_j(w)                 if w extends c_j (an explicit n-gram),
//   s_j(w) = bo(c_j) + s_{j-1}(w)   otherwise,      with s_0 = the unigram.
// So the words in descending s_K order are a merge of c_K's children in
// descending probability and (shifted by bo(c_K)) the words in descending
// s_{K-1} order that are not children of c_K, recursively down to a sorted
// unigram list. TopKIndex holds the per-node orders by probability.
#include <cstdint>
#include <vector>

#include "ngram/model.hpp"
#include "sampling/sampling.hpp"

namespace aigc::ngram {

class TopKIndex {
 public:
  TopKIndex(const Model& model, unsigned threads);
  // Writes up to k candidates (ids and log10 scores, best first; ties by id)
  // and returns how many. Never returns <s>; returns <unk> only if allow_unk.
  std::size_t top_k(const State& state, std::size_t k, bool allow_unk, std::uint32_t* ids,
                    float* scores) const;
  const Model& model() const { return model_; }

 private:
  const Model& model_;
  std::vector<std::uint32_t> unigram_order_;
  // by_prob_[k] (k >= 1): the nodes of level k, each parent's range sorted by
  // descending probability.
  std::vector<std::vector<std::uint32_t>> by_prob_;
};

// The row sampler used by generate(): the contract of sampling::sample_row.
using RowSampler = std::int32_t (*)(const float* logits, std::int64_t n,
                                    const sampling::SamplingParams& params,
                                    const std::int32_t* history, std::int64_t history_len,
                                    const sampling::DrawKey& key, void* scratch);
using ScratchBytes = std::size_t (*)(std::int64_t n);

struct GenerateOptions {
  std::size_t max_tokens = 32;
  sampling::SamplingParams params;
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  // The draw of generated token i uses DrawKey{seed, stream, first_step + i}:
  // generating in chunks (prompt + tokens so far, first_step = their count)
  // gives the same tokens as one call.
  std::uint64_t first_step = 0;
  bool bos = true;          // the context starts with <s>
  bool stop_at_eos = true;  // stop at </s> (not returned); else </s> is returned and a new sentence begins
  bool allow_unk = false;   // may <unk> be generated
  // Penalty history: distinct token ids and how often each was generated
  // before this call (both of history_len entries; may be null when 0). The
  // tokens this call draws are added as it goes. The prompt is not history.
  const std::uint32_t* history_ids = nullptr;
  const std::int32_t* history_counts = nullptr;
  std::size_t history_len = 0;
  // Token ids that cannot be drawn while first_step + i < min_tokens.
  std::size_t min_tokens = 0;
  std::vector<std::uint32_t> ban_ids;
  // >= 0: also report each draw's log-probability and its `logprobs` most
  // probable alternatives, from the distribution the draw used.
  int logprobs = -1;
  // The shared sampler (csrc/sampling), so sampling options mean the same as
  // in every other text generator; replaceable for tests.
  RowSampler sampler = &sampling::sample_row;
  ScratchBytes scratch_bytes = &sampling::scratch_bytes;
};

struct GenerateResult {
  std::vector<std::uint32_t> tokens;
  bool stopped_at_eos = false;  // the last draw was </s> and stop_at_eos ended the call
  // With logprobs >= 0: one entry per draw (the stopping </s> included), and
  // `logprobs` alternatives per draw (id -1 / -inf where fewer were kept).
  std::vector<float> logprobs;
  std::vector<std::int32_t> top_ids;
  std::vector<float> top_logprobs;
};

// Generates after the prompt ids (a </s> in the prompt starts a new sentence).
// With params.top_k in (0, vocab) the row is the exact top-k candidates (plus,
// when a penalty is on, the top-(k+|H|) and the history tokens H, so penalties
// see every token that could enter the top k); otherwise the full
// distribution. `index` is needed for top-k. Penalties are applied to the row
// (sampling::penalised_logit) before the draw.
GenerateResult generate(const Model& model, const TopKIndex* index, const std::uint32_t* prompt,
                        std::size_t prompt_len, const GenerateOptions& options);

}  // namespace aigc::ngram
