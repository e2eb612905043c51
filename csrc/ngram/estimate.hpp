#pragma once
// Counting and modified Kneser-Ney estimation, as KenLM's lmplz computes it.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ngram/model.hpp"

namespace aigc::ngram {

struct EstimateOptions {
  int order = 3;
  TokenMode mode = TokenMode::kWord;
  // Empty: no fallback (a discount that cannot be estimated is an error).
  // Otherwise 1 to 3 discounts for adjusted counts 1, 2, 3+ (missing ones
  // repeat the last), used for the orders whose closed-form estimate fails,
  // like lmplz --discount_fallback (whose default is 0.5 1 1.5).
  std::vector<float> discount_fallback;
  // Empty: no pruning. Otherwise thresholds per order like lmplz --prune:
  // n-grams of order >= 2 whose raw count is <= the threshold are removed
  // (their mass goes to the backoff). Non-decreasing; the first must be 0;
  // the last repeats for the remaining orders.
  std::vector<std::uint64_t> prune;
  unsigned threads = 0;  // 0 = all cores
};

// What the estimator found, besides the model.
struct EstimateInfo {
  std::vector<std::array<float, 4>> discounts;  // per order, [0] unused (0)
  std::vector<bool> fallback_used;              // per order
  std::uint64_t sentences = 0;
  std::uint64_t tokens = 0;  // words, without <s> and </s>
};

// Estimates a model from a text of one sentence per line.
Model estimate(std::string_view text, const EstimateOptions& options, EstimateInfo* info = nullptr);
// The same from a file, whose text is released once tokenised.
Model estimate_file(const std::string& path, const EstimateOptions& options,
                    EstimateInfo* info = nullptr);

}  // namespace aigc::ngram
