#include "ngram/model.hpp"

#include <algorithm>
#include <limits>

#include "parallel.hpp"

namespace aigc::ngram {

void check_order(long order) {
  if (order < 1 || order > kMaxOrder)
    throw std::invalid_argument("n-gram order " + std::to_string(order) +
                                " is not supported; expected 1 to " + std::to_string(kMaxOrder));
}

std::vector<std::uint64_t> Model::counts() const {
  std::vector<std::uint64_t> c;
  for (const Level& l : levels_) c.push_back(l.size());
  return c;
}

namespace {
// Slot of (parent, word) in a table of `size` slots (multiply-shift range
// reduction, so sizes need not be powers of two).
inline std::size_t child_slot(std::uint32_t parent, std::uint32_t word, std::size_t size) {
  std::uint64_t k = (static_cast<std::uint64_t>(parent) << 32) | word;
  k *= 0x9E3779B97F4A7C15ull;
  k ^= k >> 29;
  k *= 0xBF58476D1CE4E5B9ull;
  return static_cast<std::size_t>((static_cast<unsigned __int128>(k) * size) >> 64);
}
}  // namespace

void Model::prepare() const {
  std::call_once(*prepare_once_, [&] {
    auto ix = std::make_unique<ChildIndex>();
    const std::size_t n = levels_.size();
    ix->slots.resize(n);
    for (std::size_t k = 0; k + 1 < n; ++k) {
      const Level& lv = levels_[k];
      std::size_t big = 0;
      for (std::size_t p = 0; p < lv.size(); ++p) {
        std::uint32_t len = lv.child[p + 1] - lv.child[p];
        if (len > kLinearChildren) big += len;
      }
      if (!big) continue;
      const std::size_t size = big * 10 / 7 + 16;
      std::vector<std::uint64_t>& slots = ix->slots[k];
      slots.assign(size, 0);
      const std::uint32_t* words = levels_[k + 1].word.data();
      for (std::uint32_t p = 0; p < lv.size(); ++p) {
        std::uint32_t b = lv.child[p], e = lv.child[p + 1];
        if (e - b <= kLinearChildren) continue;
        for (std::uint32_t c = b; c < e; ++c) {
          std::size_t i = child_slot(p, words[c], size);
          while (slots[i]) i = i + 1 == size ? 0 : i + 1;
          slots[i] = (static_cast<std::uint64_t>(words[c]) << 32) | (c + 1);
        }
      }
    }
    index_.store(ix.get(), std::memory_order_release);
    index_owner_ = std::move(ix);
  });
}

std::uint32_t Model::find_in_range(std::size_t level, std::uint32_t parent, std::uint32_t lo,
                                   std::uint32_t hi, std::uint32_t word) const {
  const std::uint32_t* words = levels_[level + 1].word.data();
  if (hi - lo <= kLinearChildren) {
    for (; lo < hi; ++lo)
      if (words[lo] >= word) return words[lo] == word ? lo : kNoWord;
    return kNoWord;
  }
  if (const ChildIndex* ix = index_.load(std::memory_order_acquire)) {
    const std::vector<std::uint64_t>& slots = ix->slots[level];
    const std::size_t size = slots.size();
    for (std::size_t i = child_slot(parent, word, size);; i = i + 1 == size ? 0 : i + 1) {
      std::uint64_t s = slots[i];
      if (!s) return kNoWord;
      std::uint32_t c = static_cast<std::uint32_t>(s) - 1;
      if (static_cast<std::uint32_t>(s >> 32) == word && c >= lo && c < hi) return c;
    }
  }
  const std::uint32_t end = hi;
  // Binary search down to a short run, then a linear scan (the lower bound
  // is in [lo, hi]).
  while (hi - lo > 8) {
    std::uint32_t mid = lo + (hi - lo) / 2;
    if (words[mid] < word)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (; lo < end; ++lo) {
    if (words[lo] >= word) return words[lo] == word ? lo : kNoWord;
  }
  return kNoWord;
}

bool Model::compute_suffix_closed() const {
  // sfx(p w) = the child w of sfx(p), level by level.
  std::vector<std::uint32_t> prev, cur;
  for (std::size_t k = 1; k < levels_.size(); ++k) {
    const Level& pl = levels_[k - 1];
    const Level& lv = levels_[k];
    cur.assign(lv.size(), 0);
    for (std::uint32_t p = 0; p < pl.size(); ++p) {
      for (std::uint32_t c = pl.child[p]; c < pl.child[p + 1]; ++c) {
        if (k == 1) {
          cur[c] = lv.word[c];
        } else {
          std::uint32_t f = find_child(k - 2, prev[p], lv.word[c]);
          if (f == kNoWord) return false;
          cur[c] = f;
        }
      }
    }
    prev.swap(cur);
  }
  return true;
}

State Model::begin_sentence_state() const {
  State s;
  if (order() > 1) {
    s.len = 1;
    s.node[0] = kBos;
  }
  return s;
}

float Model::score_word(const State& in, std::uint32_t word, State& out) const {
  const int n = order();
  // The children ranges of all context nodes first: independent loads whose
  // cache misses overlap, then hints for the searches that follow.
  std::uint32_t lo[kMaxOrder], hi[kMaxOrder];
  const ChildIndex* ix = index_.load(std::memory_order_acquire);
  for (std::uint32_t k = 0; k < in.len; ++k) {
    const Level& lv = levels_[k];
    lo[k] = lv.child[in.node[k]];
    hi[k] = lv.child[in.node[k] + 1];
  }
  for (std::uint32_t k = 0; k < in.len; ++k) {
    if (hi[k] - lo[k] <= kLinearChildren) {
      __builtin_prefetch(levels_[k + 1].word.data() + lo[k]);
    } else if (ix) {
      const std::vector<std::uint64_t>& slots = ix->slots[k];
      __builtin_prefetch(slots.data() + child_slot(in.node[k], word, slots.size()));
    }
  }
  float p = levels_[0].prob[word];
  State next;
  next.len = n > 1 ? 1 : 0;
  next.node[0] = word;
  std::uint32_t k = 0;
  for (; k < in.len; ++k) {
    std::uint32_t c = find_in_range(k, in.node[k], lo[k], hi[k], word);
    if (c == kNoWord) break;
    p = levels_[k + 1].prob[c];
    if (static_cast<int>(k) + 2 < n) {
      next.node[k + 1] = c;
      next.len = k + 2;
    }
  }
  for (std::uint32_t j = k; j < in.len; ++j) p += levels_[j].backoff[in.node[j]];
  out = next;
  return p;
}

double Model::score_ids(const std::uint32_t* ids, std::size_t n, bool bos, bool eos) const {
  prepare();
  State s = bos ? begin_sentence_state() : null_state();
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) total += score_word(s, ids[i], s);
  if (eos) total += score_word(s, kEos, s);
  return total;
}

double Model::score_text(std::string_view sentence, bool bos, bool eos) const {
  prepare();
  // Look the words up first, with the hash-table slots prefetched, so that
  // their cache misses overlap.
  constexpr std::size_t kBatch = 64;
  std::string_view toks[kBatch];
  std::uint64_t hashes[kBatch];
  std::size_t n = 0;
  State s = bos ? begin_sentence_state() : null_state();
  double total = 0;
  auto flush = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t id = vocab_.find_hashed(toks[i], hashes[i]);
      total += score_word(s, id == kNoWord ? kUnk : id, s);
    }
    n = 0;
  };
  for_each_token(sentence, mode_, 0, [&](std::string_view t) {
    toks[n] = t;
    hashes[n] = hash_bytes(t);
    vocab_.prefetch(hashes[n]);
    if (++n == kBatch) flush();
  });
  flush();
  if (eos) total += score_word(s, kEos, s);
  return total;
}

namespace {

// Runs fn(begin, end) over blocks of [0, n) handed out dynamically to up to
// `threads` threads, so that a thread the OS preempts (the machine may be
// shared) does not hold back a large fixed share of the work.
template <class Fn>
void dynamic_for(std::size_t n, unsigned threads, std::size_t block, Fn&& fn) {
  if (threads == 0) threads = default_thread_count();
  std::size_t blocks = (n + block - 1) / block;
  unsigned t = static_cast<unsigned>(std::min<std::size_t>(threads, blocks));
  if (t <= 1) {
    if (n) fn(std::size_t{0}, n);
    return;
  }
  std::atomic<std::size_t> next{0};
  parallel_for(t, t, 1, [&](std::size_t, std::size_t) {
    for (;;) {
      std::size_t b = next.fetch_add(block);
      if (b >= n) break;
      fn(b, std::min(n, b + block));
    }
  });
}

}  // namespace

std::vector<double> Model::score_batch(const std::vector<std::string_view>& sentences, bool bos,
                                       bool eos, unsigned threads) const {
  prepare();
  std::vector<double> out(sentences.size());
  dynamic_for(sentences.size(), threads, 256, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) out[i] = score_text(sentences[i], bos, eos);
  });
  return out;
}

PerplexityStats Model::perplexity(std::string_view text, unsigned threads) const {
  prepare();
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < text.size();) {
    starts.push_back(i);
    std::size_t nl = text.find('\n', i);
    i = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  starts.push_back(text.size());
  std::size_t lines = starts.size() - 1;
  unsigned t = threads == 0 ? default_thread_count() : threads;
  std::vector<PerplexityStats> parts(std::max(1u, t));
  std::size_t step = (lines + parts.size() - 1) / parts.size();
  parallel_for(parts.size(), t, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t part = b; part < e; ++part) {
      PerplexityStats& st = parts[part];
      std::size_t lb = std::min(lines, part * step), le = std::min(lines, lb + step);
      for (std::size_t li = lb; li < le; ++li) {
        std::size_t s0 = starts[li], s1 = starts[li + 1];
        std::string_view line = text.substr(s0, s1 - s0);
        if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
        State s = begin_sentence_state();
        for_each_token(line, mode_, s0, [&](std::string_view tok) {
          std::uint32_t id = index(tok);
          float p = score_word(s, id, s);
          st.log10_prob += p;
          ++st.tokens;
          if (id == kUnk) {
            ++st.oov;
            st.oov_log10_prob += p;
          }
        });
        st.log10_prob += score_word(s, kEos, s);
        ++st.tokens;
        ++st.sentences;
      }
    }
  });
  PerplexityStats total;
  for (const PerplexityStats& p : parts) {
    total.log10_prob += p.log10_prob;
    total.oov_log10_prob += p.oov_log10_prob;
    total.tokens += p.tokens;
    total.oov += p.oov;
    total.sentences += p.sentences;
  }
  return total;
}

void Model::next_logprobs(const State& state, float* out) const {
  const std::size_t v = vocab_size();
  // suffix[j] = sum of the backoffs of the contexts longer than j words.
  float suffix[kMaxOrder + 1];
  suffix[state.len] = 0;
  for (std::uint32_t j = state.len; j-- > 0;) suffix[j] = suffix[j + 1] + levels_[j].backoff[state.node[j]];
  const float* uni = levels_[0].prob.data();
  for (std::size_t w = 0; w < v; ++w) out[w] = uni[w] + suffix[0];
  for (std::uint32_t j = 0; j < state.len; ++j) {
    const Level& lv = levels_[j];
    const Level& up = levels_[j + 1];
    std::uint32_t b = lv.child[state.node[j]], e = lv.child[state.node[j] + 1];
    for (std::uint32_t c = b; c < e; ++c) out[up.word[c]] = up.prob[c] + suffix[j + 1];
  }
  const float kLn10 = 2.302585092994046f;
  for (std::size_t w = 0; w < v; ++w) out[w] *= kLn10;
  out[kBos] = -std::numeric_limits<float>::infinity();
}

}  // namespace aigc::ngram
