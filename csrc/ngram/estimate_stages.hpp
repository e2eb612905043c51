#pragma once
// Internal interface between the estimation stages (not part of the API).
//
// The arithmetic that decides the model's bits (discounts, backoffs,
// interpolated probabilities, log10) lives here once and is used by both
// the in-memory and the bounded path, so that they agree bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ngram/estimate.hpp"
#include "ngram/model.hpp"
#include "parallel.hpp"

namespace aigc::ngram::stages {

constexpr std::uint32_t kSentinel = 0xFFFFFFFFu;

template <class Fn>
void run_threads(unsigned threads, Fn&& fn) {
  if (threads <= 1) {
    fn(0u);
    return;
  }
  parallel_for(threads, threads, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) fn(static_cast<unsigned>(t));
  });
}

struct Discount {
  float amount[4] = {0, 0, 0, 0};
  float get(std::uint32_t c) const { return amount[std::min<std::uint32_t>(c, 3)]; }
  float apply(std::uint32_t c) const { return static_cast<float>(c) - get(c); }
};

// Options checked once, as both paths need them.
struct Plan {
  int order = 0;
  TokenMode mode = TokenMode::kWord;
  bool has_fallback = false;
  Discount fallback;
  std::vector<std::uint64_t> prune;  // per order (empty: none)
  bool pruning = false;
  unsigned threads = 1;
  EstimateProgress* progress = nullptr;
  // True when an n-gram of `order` (1-based) with this raw count is pruned.
  bool pruned(int ngram_order, std::uint64_t raw) const {
    return pruning && ngram_order >= 2 && prune[ngram_order - 1] > 0 &&
           raw <= prune[ngram_order - 1];
  }
  void begin(const std::string& stage, std::uint64_t total = 0) const {
    if (progress) {
      progress->check();
      progress->begin(stage, total);
    }
  }
  void advance(std::uint64_t n) const {
    if (progress) {
      progress->check();
      progress->advance(n);
    }
  }
};
Plan make_plan(const EstimateOptions& opt);

// Counts of counts (index 1..4) of one order's adjusted counts.
struct CountsOfCounts {
  std::uint64_t n[5] = {0, 0, 0, 0, 0};
  void add(std::uint32_t c) {
    if (c < 5) ++n[c];
  }
};

// Discounts per order (Chen & Goodman eq. 26, as lmplz), or the fallback.
void compute_discounts(const Plan& plan, const std::vector<CountsOfCounts>& counts,
                       std::vector<Discount>& discounts, std::vector<bool>& used_fallback);

// Sums over the children of one context, from which its backoff follows.
struct ContextStats {
  std::uint64_t denom = 0, normalizer = 0, nn[4] = {0, 0, 0, 0};
  void add(std::uint32_t adjusted, bool pruned) {
    denom += adjusted;
    if (pruned)
      normalizer += adjusted;
    else if (adjusted > 0)
      ++nn[std::min<std::uint32_t>(adjusted, 3)];
  }
};

// The interpolation weight (linear backoff) of a context.
inline float kn_gamma(const Discount& d, const ContextStats& s) {
  const float fden = static_cast<float>(s.denom);
  float gamma = 0.0f;
  for (int i = 1; i <= 3; ++i) gamma += d.amount[i] * static_cast<float>(s.nn[i]);
  gamma += static_cast<float>(s.normalizer);
  gamma /= fden;
  return gamma;
}

// Interpolated linear probability of an n-gram with adjusted count `c`.
// The uninterpolated part, (c - D(c)) / sum; the probability is
// kn_uninterpolated + gamma * p(suffix) (kn_prob, in one step or two).
inline float kn_uninterpolated(const Discount& d, std::uint32_t c, const ContextStats& s) {
  return d.apply(c) / static_cast<float>(s.denom);
}
inline float kn_prob(const Discount& d, std::uint32_t c, const ContextStats& s, float gamma,
                     float lower) {
  const float un = kn_uninterpolated(d, c, s);
  return un + gamma * lower;
}

// Whether a context ending in `last` keeps its backoff (as lmplz: not <unk>, </s>).
inline bool keeps_backoff(std::uint32_t last) { return last != kUnk && last != kEos; }

inline float log_prob(float p) { return std::min(0.0f, log10f(p)); }
inline float log_backoff(float b) { return log10f(b); }

// Unigram linear probabilities from adjusted counts (<unk>, <s> already 0).
std::vector<float> unigram_probs(const std::vector<std::uint32_t>& adjusted, const Discount& d);

// ---- in-memory path ------------------------------------------------------

// The corpus as id arrays, in chunks of whole lines tokenised in parallel.
struct Chunk {
  std::vector<std::uint32_t> ids;  // "<s> ... </s>" per sentence
  Vocabulary vocab;                // local ids (for chunks > 0)
  std::uint64_t sentences = 0, words = 0;
};

// Tokenises `text` into chunks and merges their vocabularies into `vocab`
// (chunk ids remapped to it).
std::vector<Chunk> read_corpus(std::string_view text, const Plan& plan, Vocabulary& vocab,
                               std::uint64_t& sentences, std::uint64_t& words);

// Throws the error for a reserved word found at `offset` of `text`.
[[noreturn]] void throw_reserved(std::string_view word, std::uint64_t line);
std::uint64_t line_of_offset(std::string_view text, std::size_t offset);

// The trie under construction: per level word, first child (levels below
// the top), terminal count.
struct Build {
  int order = 0;
  std::vector<std::vector<std::uint32_t>> word, child, count;
};
void build_trie(std::vector<Chunk>& chunks, std::size_t vocab_size, const Plan& plan, Build& b);

// Raw and adjusted counts of the trie's levels.
struct Counts {
  std::vector<std::vector<std::uint32_t>> adjusted;  // per level
  std::vector<std::vector<char>> pruned;             // per level (empty: none)
  std::vector<std::vector<std::uint32_t>> suffix;    // per level >= 1: the level-1 node
};
// Turns terminal counts (moved out of `b`) into adjusted counts, marks
// pruned n-grams, and links each node to its suffix.
void adjust_counts(std::vector<Level>& levels, Build& b, const Plan& plan, Counts& counts);

// Probabilities and backoffs (log10) into `levels`, then removal of pruned
// n-grams; frees `counts` level by level.
void interpolate(std::vector<Level>& levels, Counts& counts, const std::vector<Discount>& discounts,
                 const Plan& plan);

Model estimate_in_memory(std::string_view text, std::string* owned, const Plan& plan,
                         EstimateInfo* info);

// ---- output of the bounded path -------------------------------------------

// Receives the final n-grams, order by order (1, 2, ...), each order in trie
// (forward lexicographic id) order.
class GramSink {
 public:
  virtual ~GramSink() = default;
  // Number of n-grams per order that will be added.
  virtual void start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) = 0;
  // One n-gram of order `n` (ids[0..n-1]); `child_begin`: the index in order
  // n+1 of its first child (below the highest order).
  virtual void add(int n, const std::uint32_t* ids, float prob, float backoff,
                   std::uint64_t child_begin) = 0;
  virtual void finish() = 0;
};

// Builds the model's trie.
class TrieSink : public GramSink {
 public:
  explicit TrieSink(Model& model) : model_(model) {}
  void start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) override;
  void add(int n, const std::uint32_t* ids, float prob, float backoff,
           std::uint64_t child_begin) override;
  void finish() override;

 private:
  Model& model_;
  std::vector<std::uint64_t> counts_;
};

// Writes an ARPA file, byte for byte as Model::write_arpa of a model in `mode`. With
// `background`, the lines are formatted and written on a thread of their own
// from chunks of about `chunk_bytes` of binary records.
class ArpaSink : public GramSink {
 public:
  ArpaSink(const std::string& path, TokenMode mode, std::size_t chunk_bytes, bool background);
  ~ArpaSink() override;
  void start(const Vocabulary& vocab, const std::vector<std::uint64_t>& counts) override;
  void add(int n, const std::uint32_t* ids, float prob, float backoff,
           std::uint64_t child_begin) override;
  void finish() override;

 private:
  struct Impl;
  Impl* impl_;
};

// The bounded path: corpus is a path (is_path) or the text itself.
void estimate_bounded(std::string_view corpus, bool is_path, const Plan& plan,
                      const EstimateOptions& opt, Vocabulary& vocab, GramSink& sink,
                      std::vector<Discount>& discounts, std::vector<bool>& used_fallback,
                      EstimateInfo* info);

}  // namespace aigc::ngram::stages
