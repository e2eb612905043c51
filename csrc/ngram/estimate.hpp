#pragma once
// Counting and modified Kneser-Ney estimation, as KenLM's lmplz computes it.
//
// Two paths give the same model, bit for bit:
// - in memory (memory == 0): a forward trie built from sorted windows
//   (stage_corpus, stage_count, stage_adjust, stage_discount,
//   stage_interpolate);
// - bounded (memory > 0): the stages work on blocks that spill to sorted
//   runs in a temporary directory and merge, as lmplz does (external_*.cpp).
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ngram/model.hpp"

namespace aigc::ngram {

// Where the estimator is: the stage it works on and how far it is in it.
// Written by the estimator, read from another thread (the bindings poll it);
// `cancel()` makes the estimator stop at its next check with EstimateCancelled.
class EstimateProgress {
 public:
  void begin(const std::string& stage, std::uint64_t total) {
    std::lock_guard<std::mutex> lock(mu_);
    stage_ = stage;
    total_ = total;
    done_.store(0, std::memory_order_relaxed);
    index_.fetch_add(1, std::memory_order_release);
  }
  void advance(std::uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  // Throws EstimateCancelled after cancel().
  void check() const;
  void cancel() { cancelled_.store(true); }

  // Reader side.
  int stage_index() const { return index_.load(std::memory_order_acquire); }
  std::string stage(std::uint64_t* total) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (total) *total = total_;
    return stage_;
  }
  std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mu_;
  std::string stage_;
  std::uint64_t total_ = 0;
  std::atomic<std::uint64_t> done_{0};
  std::atomic<int> index_{0};
  std::atomic<bool> cancelled_{false};
};

class EstimateCancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "estimation cancelled"; }
};

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
  // Memory budget in bytes (as lmplz -S); 0 = no budget: everything in memory.
  std::uint64_t memory = 0;
  // Directory for the spill files of a bounded estimation (as lmplz -T);
  // empty = $TMPDIR or /tmp. A private subdirectory is made there and
  // removed, with everything in it, on success and on failure.
  std::string temp_dir;
  EstimateProgress* progress = nullptr;  // optional, not owned
};

// What the estimator found, besides the model.
struct EstimateInfo {
  std::vector<std::array<float, 4>> discounts;  // per order, [0] unused (0)
  std::vector<bool> fallback_used;              // per order
  std::uint64_t sentences = 0;
  std::uint64_t tokens = 0;  // words, without <s> and </s>
  std::uint64_t spill_runs = 0;   // sorted runs written to disk (bounded path)
  std::uint64_t spill_bytes = 0;  // bytes written to disk (bounded path)
  // Orders whose probabilities spilled (bounded path: those of two adjacent
  // orders take more than 60% of the budget).
  std::uint64_t spilled_orders = 0;
};

// Estimates a model from a text of one sentence per line.
Model estimate(std::string_view text, const EstimateOptions& options, EstimateInfo* info = nullptr);
// The same from a file, whose text is released once tokenised (in memory)
// or read block by block (bounded).
Model estimate_file(const std::string& path, const EstimateOptions& options,
                    EstimateInfo* info = nullptr);
// Estimates and writes the ARPA file `arpa_path` (the bytes Model::write_arpa
// writes) without holding the model: with a budget, peak memory stays near
// it whatever the corpus size. `corpus` is a path when `is_path`, else the text.
void estimate_to_arpa(std::string_view corpus, bool is_path, const std::string& arpa_path,
                      const EstimateOptions& options, EstimateInfo* info = nullptr);

// A memory size as lmplz -S reads it: a number with a suffix b, K, M, G, T
// (powers of 1024; no suffix = K) or % (of physical memory). Throws
// std::invalid_argument naming the text.
std::uint64_t parse_memory_size(std::string_view text);

}  // namespace aigc::ngram
