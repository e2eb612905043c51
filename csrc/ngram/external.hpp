#pragma once
// The bounded-memory estimator's records and shared state.
//
// The pipeline (each stage in its own file, as KenLM's lm/builder):
// 1. external_count: the corpus, read block by block, becomes backward
//    windows: at each position the words back to <s> (at most N), last word
//    first. Blocks of windows are sorted and counted, spilled as runs.
// 2. external_adjust: the merged windows are the depth-first order of the
//    reversed trie, whose nodes are all n-grams in suffix order. Closing a
//    node gives its raw count (windows below it) and its adjusted count (its
//    children: the distinct words that precede it). Each n-gram gets a rank
//    in suffix order and the rank of its suffix (its parent); the n-grams of
//    each order go to a sorter in forward order.
// 3. stage_discount: discounts from the counts of counts.
// 4. external_interpolate: order by order, the forward-sorted n-grams are
//    grouped by context: the sums give the context's backoff, and with the
//    suffix probability (by rank, from the order below) the n-gram's
//    interpolated probability (stored by rank). The order below is walked in
//    step, so each of its n-grams is written out with its probability and
//    backoff, in trie order, to a sink (ARPA file or trie).
//
// Memory: the vocabulary, the sort blocks, sized from the budget, and one
// probability per n-gram of two adjacent orders (by rank) while they fit in
// 60% of the budget; past that they spill too (external_interpolate).
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ngram/estimate_stages.hpp"
#include "ngram/spill.hpp"

namespace aigc::ngram::stages {

// A backward window: w[0] the word at the position, w[1] the one before...,
// up to and including <s>; kSentinel after it.
template <int N>
struct WindowCount {
  std::uint32_t w[N];
  std::uint32_t count;
};
template <int N>
struct WindowLess {
  bool operator()(const WindowCount<N>& a, const WindowCount<N>& b) const {
    for (int i = 0; i < N; ++i)
      if (a.w[i] != b.w[i]) return a.w[i] < b.w[i];
    return false;
  }
};
template <int N>
bool combine_windows(WindowCount<N>& into, const WindowCount<N>& from) {
  if (std::memcmp(into.w, from.w, sizeof into.w) != 0) return false;
  into.count += from.count;
  return true;
}
template <int N>
using WindowSorter = Sorter<WindowCount<N>, WindowLess<N>>;

// An n-gram of order K (w in text order) with its adjusted count and
// whether it is pruned (the top bit: kPrunedBit), its rank in suffix order
// and the rank of its suffix.
constexpr std::uint32_t kPrunedBit = 0x80000000u;
template <int K>
struct Gram {
  std::uint32_t w[K];
  std::uint32_t counted;  // adjusted count | kPrunedBit if pruned
  std::uint32_t self;
  std::uint32_t suffix;
  std::uint32_t adjusted() const { return counted & ~kPrunedBit; }
  bool pruned() const { return (counted & kPrunedBit) != 0; }
};
template <int K>
struct GramLess {
  bool operator()(const Gram<K>& a, const Gram<K>& b) const {
    for (int i = 0; i < K; ++i)
      if (a.w[i] != b.w[i]) return a.w[i] < b.w[i];
    return false;
  }
};
template <int K>
using GramSorter = Sorter<Gram<K>, GramLess<K>>;

// Calls fn(std::integral_constant<int, K>) for the runtime k in [1, kMaxOrder].
template <class Fn>
void with_order(int k, Fn&& fn) {
  switch (k) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: throw std::invalid_argument("order " + std::to_string(k) + " is out of range");
  }
}

struct External {
  External(const Plan& p, SpillDir& d, Vocabulary& v, std::uint64_t memory)
      : plan(p), dir(d), vocab(v), budget(memory) {}
  const Plan& plan;
  SpillDir& dir;
  Vocabulary& vocab;
  std::uint64_t budget;

  std::uint64_t sentences = 0, words = 0, windows = 0;
  std::unique_ptr<SorterBase> window_sorter;
  std::vector<std::unique_ptr<SorterBase>> grams;  // [k] for orders k >= 2
  std::vector<std::uint32_t> unigram_adjusted;     // by word id
  std::vector<CountsOfCounts> counts_of_counts;    // per order (0-based)
  std::vector<std::uint64_t> sizes;                // n-grams per order (0-based)
  std::vector<std::uint64_t> kept;                 // after pruning
  std::uint64_t spilled_orders = 0;                // orders whose probabilities spilled

  // Bytes the vocabulary holds (estimate).
  std::uint64_t vocab_bytes() const {
    return vocab.arena().capacity() + vocab.offsets().capacity() * 8 + vocab.size() * 32;
  }
  // What is left of the budget for blocks once `reserved` bytes are held,
  // at least a small working size. A tenth of the budget stays free for what
  // is not counted (allocator slack, buffers, the process itself).
  std::size_t available(std::uint64_t reserved) const {
    const std::uint64_t target = budget - budget / 10;
    const std::uint64_t used = vocab_bytes() + reserved;
    const std::uint64_t floor = std::max<std::uint64_t>(budget / 16, 1 << 18);
    return static_cast<std::size_t>(used + floor < target ? target - used : floor);
  }
};

template <int N>
void count_windows(External& ex, std::string_view corpus, bool is_path);
template <int N>
void adjust_counts_external(External& ex);
void interpolate_external(External& ex, const std::vector<Discount>& discounts, GramSink& sink);

}  // namespace aigc::ngram::stages
