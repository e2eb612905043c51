#pragma once
// The n-gram language model: a forward trie of sorted arrays, one Level per
// order, with KenLM's backoff query semantics.
//
// Level k (0-based) holds the (k+1)-grams. Level 0 is indexed by word id.
// The children of node i at level k are the nodes [child[i], child[i+1]) of
// level k+1, sorted by word: the (k+2)-grams that extend the (k+1)-gram i by
// one word on the right. prob and backoff are log10 (backoff is absent at the
// highest level).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ngram/text.hpp"
#include "ngram/vocab.hpp"

namespace aigc::ngram {

// Highest supported order.
constexpr int kMaxOrder = 8;

struct Level {
  std::vector<std::uint32_t> word;
  std::vector<std::uint32_t> child;  // size() + 1 entries below the highest level
  std::vector<float> prob;
  std::vector<float> backoff;        // empty at the highest level
  std::size_t size() const { return word.size(); }
};

// A query state: the trie nodes of the context suffixes, most recent first.
// node[k] is the level-k node of the (k+1) most recent words; len of them are
// valid (the longer suffixes are not in the model).
struct State {
  std::uint32_t len = 0;
  std::uint32_t node[kMaxOrder] = {};
};

// Totals of a scored corpus as KenLM's `query` reports them.
struct PerplexityStats {
  double log10_prob = 0;      // sum over all tokens (words and </s>)
  double oov_log10_prob = 0;  // sum over the OOV tokens only
  std::uint64_t tokens = 0;   // words + one </s> per sentence
  std::uint64_t oov = 0;
  std::uint64_t sentences = 0;
  double perplexity() const { return std::pow(10.0, -log10_prob / double(tokens)); }
  double perplexity_excluding_oov() const {
    return std::pow(10.0, -(log10_prob - oov_log10_prob) / double(tokens - oov));
  }
};

void check_order(long order);

// Hash tables over the children of nodes with many children (the binary
// search there costs several cache misses); built lazily by Model::prepare().
struct ChildIndex {
  // Per level: (word << 32 | child index + 1), 0 = empty. The child index
  // lies in exactly one parent's range, so (word, index) identifies it.
  std::vector<std::vector<std::uint64_t>> slots;
};

class Model {
 public:
  Model() : prepare_once_(std::make_unique<std::once_flag>()) {}
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&& o) noexcept { *this = std::move(o); }
  Model& operator=(Model&& o) noexcept {
    vocab_ = std::move(o.vocab_);
    levels_ = std::move(o.levels_);
    mode_ = o.mode_;
    suffix_closed_ = o.suffix_closed_;
    index_owner_ = std::move(o.index_owner_);
    index_.store(o.index_.load());
    o.index_.store(nullptr);
    prepare_once_ = std::move(o.prepare_once_);
    o.prepare_once_ = std::make_unique<std::once_flag>();
    return *this;
  }

  // Builds the lookup index for fast queries (once; thread-safe). Queries
  // are correct without it, only slower.
  void prepare() const;

  int order() const { return static_cast<int>(levels_.size()); }
  std::size_t vocab_size() const { return vocab_.size(); }
  const Vocabulary& vocab() const { return vocab_; }
  TokenMode mode() const { return mode_; }
  void set_mode(TokenMode m) { mode_ = m; }
  const std::vector<Level>& levels() const { return levels_; }
  std::vector<std::uint64_t> counts() const;

  // Word id of `word`, kUnk if absent.
  std::uint32_t index(std::string_view word) const {
    std::uint32_t id = vocab_.find(word);
    return id == kNoWord ? kUnk : id;
  }

  // Child of node `parent` of level `level` with `word`, or kNoWord.
  std::uint32_t find_child(std::size_t level, std::uint32_t parent, std::uint32_t word) const {
    const Level& lv = levels_[level];
    return find_in_range(level, parent, lv.child[parent], lv.child[parent + 1], word);
  }
  // The same when the children range [lo, hi) of `parent` is known.
  std::uint32_t find_in_range(std::size_t level, std::uint32_t parent, std::uint32_t lo,
                              std::uint32_t hi, std::uint32_t word) const;

  State null_state() const { return State{}; }
  State begin_sentence_state() const;
  // Advances `state` over `word` without scoring (for prompts).
  void advance(State& state, std::uint32_t word) const { (void)score_word(state, word, state); }
  // log10 p(word | state); writes the state after `word` to `out` (may alias `in`).
  float score_word(const State& in, std::uint32_t word, State& out) const;

  // log10 probability of a tokenised sentence (ids), with <s> context and </s>.
  double score_ids(const std::uint32_t* ids, std::size_t n, bool bos, bool eos) const;
  double score_text(std::string_view sentence, bool bos, bool eos) const;
  // Scores many sentences with `threads` threads.
  std::vector<double> score_batch(const std::vector<std::string_view>& sentences, bool bos, bool eos,
                                  unsigned threads) const;
  // KenLM query's totals over a text of one sentence per line.
  PerplexityStats perplexity(std::string_view text, unsigned threads) const;

  // Natural-log next-token distribution after `state` over all vocab_size()
  // ids (<s> gets -inf).
  void next_logprobs(const State& state, float* out) const;

  // Building and I/O.
  static Model read_arpa(const std::string& path);
  static Model parse_arpa(std::string_view text, const std::string& name);
  // Lines are formatted on `threads` threads (0 = all cores, at most 4) and
  // written in order: the bytes do not depend on it. `written`, if given, is
  // called on this thread with the number of n-grams of each piece written.
  void write_arpa(const std::string& path, unsigned threads = 0,
                  const std::function<void(std::uint64_t)>& written = {}) const;
  void save_binary(const std::string& path) const;
  static Model load_binary(const std::string& path);

  // True when the suffix of every n-gram (its last n-1 words) is in the
  // model too, as in every model lmplz or estimate() makes; exact top-k
  // then skips most membership tests. ARPA files are checked on reading.
  bool suffix_closed() const { return suffix_closed_; }
  void set_suffix_closed(bool closed) { suffix_closed_ = closed; }
  // Checks the property over the whole trie.
  bool compute_suffix_closed() const;

  // Construction by the estimator and the readers.
  Vocabulary& mutable_vocab() { return vocab_; }
  std::vector<Level>& mutable_levels() { return levels_; }

 private:
  Vocabulary vocab_;
  std::vector<Level> levels_;
  TokenMode mode_ = TokenMode::kWord;
  bool suffix_closed_ = false;
  // Cache owned by the model (built by prepare()).
  mutable std::unique_ptr<ChildIndex> index_owner_;
  mutable std::atomic<const ChildIndex*> index_{nullptr};
  mutable std::unique_ptr<std::once_flag> prepare_once_;
};

// Children ranges up to this size are scanned instead of hashed.
constexpr std::uint32_t kLinearChildren = 16;

// Binary format version written by save_binary (2: with a checksum); load_binary
// reads versions 1 and 2.
constexpr std::uint32_t kBinaryVersion = 2;

}  // namespace aigc::ngram
