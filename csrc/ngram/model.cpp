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

std::uint32_t Model::find_child(std::size_t level, std::uint32_t parent, std::uint32_t word) const {
  const Level& lv = levels_[level];
  const std::uint32_t* words = levels_[level + 1].word.data();
  std::uint32_t lo = lv.child[parent], hi = lv.child[parent + 1];
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
  float p = levels_[0].prob[word];
  State next;
  next.len = n > 1 ? 1 : 0;
  next.node[0] = word;
  std::uint32_t k = 0;
  for (; k < in.len; ++k) {
    std::uint32_t c = find_child(k, in.node[k], word);
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
  State s = bos ? begin_sentence_state() : null_state();
  double total = 0;
  for (std::size_t i = 0; i < n; ++i) total += score_word(s, ids[i], s);
  if (eos) total += score_word(s, kEos, s);
  return total;
}

double Model::score_text(std::string_view sentence, bool bos, bool eos) const {
  State s = bos ? begin_sentence_state() : null_state();
  double total = 0;
  for_each_token(sentence, mode_, 0,
                 [&](std::string_view t) { total += score_word(s, index(t), s); });
  if (eos) total += score_word(s, kEos, s);
  return total;
}

std::vector<double> Model::score_batch(const std::vector<std::string_view>& sentences, bool bos,
                                       bool eos, unsigned threads) const {
  std::vector<double> out(sentences.size());
  parallel_for(sentences.size(), threads, 256, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) out[i] = score_text(sentences[i], bos, eos);
  });
  return out;
}

PerplexityStats Model::perplexity(std::string_view text, unsigned threads) const {
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
