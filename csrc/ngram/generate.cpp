#include "ngram/generate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "parallel.hpp"

namespace aigc::ngram {

namespace {

bool child_contains(const Model& m, std::size_t level, std::uint32_t parent, std::uint32_t word) {
  return m.find_child(level, parent, word) != kNoWord;
}

}  // namespace

TopKIndex::TopKIndex(const Model& model, unsigned threads) : model_(model) {
  model.prepare();
  const auto& levels = model.levels();
  const std::size_t v = model.vocab_size();
  const float* up = levels[0].prob.data();
  unigram_order_.reserve(v);
  for (std::uint32_t w = 0; w < v; ++w)
    if (w != kBos) unigram_order_.push_back(w);
  std::sort(unigram_order_.begin(), unigram_order_.end(), [&](std::uint32_t a, std::uint32_t b) {
    return up[a] > up[b] || (up[a] == up[b] && a < b);
  });
  by_prob_.resize(levels.size());
  for (std::size_t k = 1; k < levels.size(); ++k) {
    const Level& pl = levels[k - 1];
    const Level& lv = levels[k];
    std::vector<std::uint32_t>& order = by_prob_[k];
    order.resize(lv.size());
    std::iota(order.begin(), order.end(), 0u);
    const float* pr = lv.prob.data();
    const std::uint32_t* wd = lv.word.data();
    parallel_for(pl.size(), threads, 4096, [&](std::size_t s, std::size_t e) {
      for (std::size_t p = s; p < e; ++p) {
        std::sort(order.begin() + pl.child[p], order.begin() + pl.child[p + 1],
                  [&](std::uint32_t a, std::uint32_t b) {
                    return pr[a] > pr[b] || (pr[a] == pr[b] && wd[a] < wd[b]);
                  });
      }
    });
  }
}

std::size_t TopKIndex::top_k(const State& state, std::size_t k, bool allow_unk, std::uint32_t* ids,
                             float* scores) const {
  struct Stream {
    std::uint32_t a = 0, a_end = 0;  // explicit children: positions in by_prob_[j]
    std::uint32_t ctx = 0;           // context node (level j-1)
    float bo = 0;
    bool has_head = false, head_explicit = false, exhausted = false;
    std::uint32_t head_origin = 0;  // highest level where head_word is explicit (0: unigram list)
    std::uint32_t head_word = 0;
    float head_val = 0;
  };
  struct Merger {
    const TopKIndex& ix;
    bool allow_unk;
    bool closed;
    Stream st[kMaxOrder + 1];
    std::size_t uni_pos = 0;

    bool peek(std::uint32_t j) {
      Stream& s = st[j];
      if (s.has_head) return true;
      if (s.exhausted) return false;
      const auto& levels = ix.model_.levels();
      if (j == 0) {
        const auto& uo = ix.unigram_order_;
        while (uni_pos < uo.size() && !allow_unk && uo[uni_pos] == kUnk) ++uni_pos;
        if (uni_pos >= uo.size()) {
          s.exhausted = true;
          return false;
        }
        s.head_word = uo[uni_pos];
        s.head_val = levels[0].prob[s.head_word];
        s.head_explicit = false;
        s.head_origin = 0;
        s.has_head = true;
        return true;
      }
      const Level& lv = levels[j];
      const std::vector<std::uint32_t>& order = ix.by_prob_[j];
      // Never <s> (an ARPA file may hold an n-gram that ends in it), <unk> only if allowed.
      while (s.a < s.a_end && (lv.word[order[s.a]] == kBos || (!allow_unk && lv.word[order[s.a]] == kUnk))) ++s.a;
      const bool have_a = s.a < s.a_end;
      bool have_b = false;
      while (peek(j - 1)) {
        // In a suffix-closed model the children of this context are also
        // children of the next shorter one, so only a word explicit there can
        // be explicit here.
        const bool maybe_child = !closed || st[j - 1].head_origin + 1 == j;
        if (!maybe_child || !child_contains(ix.model_, j - 1, s.ctx, st[j - 1].head_word)) {
          have_b = true;
          break;
        }
        pop(j - 1);  // an explicit child here: it comes from the explicit list
      }
      if (!have_a && !have_b) {
        s.exhausted = true;
        return false;
      }
      const float va = have_a ? lv.prob[order[s.a]] : 0.0f;
      const float vb = have_b ? s.bo + st[j - 1].head_val : 0.0f;
      const std::uint32_t wa = have_a ? lv.word[order[s.a]] : kNoWord;
      const std::uint32_t wb = have_b ? st[j - 1].head_word : kNoWord;
      if (have_a && (!have_b || va > vb || (va == vb && wa < wb))) {
        s.head_word = wa;
        s.head_val = va;
        s.head_explicit = true;
        s.head_origin = j;
      } else {
        s.head_word = wb;
        s.head_val = vb;
        s.head_explicit = false;
        s.head_origin = st[j - 1].head_origin;
      }
      s.has_head = true;
      return true;
    }

    void pop(std::uint32_t j) {
      Stream& s = st[j];
      s.has_head = false;
      if (j == 0) {
        ++uni_pos;
      } else if (s.head_explicit) {
        ++s.a;
      } else {
        pop(j - 1);
      }
    }
  };
  const auto& levels = model_.levels();
  Merger m{*this, allow_unk, model_.suffix_closed(), {}, 0};
  const std::uint32_t K = state.len;
  for (std::uint32_t j = 1; j <= K; ++j) {
    std::uint32_t c = state.node[j - 1];
    m.st[j].ctx = c;
    m.st[j].a = levels[j - 1].child[c];
    m.st[j].a_end = levels[j - 1].child[c + 1];
    m.st[j].bo = levels[j - 1].backoff[c];
  }
  std::size_t n = 0;
  while (n < k && m.peek(K)) {
    ids[n] = m.st[K].head_word;
    scores[n] = m.st[K].head_val;
    ++n;
    m.pop(K);
  }
  return n;
}

// ---------------------------------------------------------------------------

std::vector<std::uint32_t> generate(const Model& model, const TopKIndex* index,
                                    const std::uint32_t* prompt, std::size_t prompt_len,
                                    const GenerateOptions& o) {
  const std::size_t v = model.vocab_size();
  for (std::size_t i = 0; i < prompt_len; ++i)
    if (prompt[i] >= v)
      throw std::out_of_range("prompt id " + std::to_string(prompt[i]) + " at position " +
                              std::to_string(i) + " is outside the vocabulary of " +
                              std::to_string(v) + " words");
  model.prepare();
  State state = o.bos ? model.begin_sentence_state() : model.null_state();
  for (std::size_t i = 0; i < prompt_len; ++i) {
    // A </s> inside the prompt ends a sentence, as it does in the output.
    if (prompt[i] == kEos)
      state = model.begin_sentence_state();
    else
      model.advance(state, prompt[i]);
  }
  const bool use_top_k = o.params.top_k > 0 && static_cast<std::size_t>(o.params.top_k) < v;
  if (use_top_k && !index) throw std::invalid_argument("top-k generation needs a TopKIndex");
  const bool penalties = o.params.repetition_penalty != 1.0f || o.params.presence_penalty != 0.0f ||
                         o.params.frequency_penalty != 0.0f;
  std::vector<std::int32_t> history;
  if (penalties) history.assign(prompt, prompt + prompt_len);
  std::vector<std::uint32_t> out;
  out.reserve(std::min<std::size_t>(o.max_tokens, 1 << 16));
  std::vector<std::uint32_t> cand;
  std::vector<float> row;
  std::vector<std::int32_t> local_hist;
  std::vector<char> scratch;
  for (std::size_t step = 0; step < o.max_tokens; ++step) {
    std::uint32_t token;
    const sampling::DrawKey key{o.seed, o.stream, o.first_step + step};
    if (use_top_k) {
      std::size_t want = static_cast<std::size_t>(o.params.top_k);
      std::vector<std::uint32_t> uniq;
      if (penalties) {
        uniq.assign(history.begin(), history.end());
        std::sort(uniq.begin(), uniq.end());
        uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
        want += uniq.size();
      }
      cand.resize(want + uniq.size());
      row.resize(want + uniq.size());
      std::size_t n = index->top_k(state, want, o.allow_unk, cand.data(), row.data());
      if (penalties) {
        for (std::uint32_t h : uniq) {
          if (h == kBos || (h == kUnk && !o.allow_unk)) continue;
          if (std::find(cand.begin(), cand.begin() + n, h) != cand.begin() + n) continue;
          State tmp;
          cand[n] = h;
          row[n] = model.score_word(state, h, tmp);
          ++n;
        }
        local_hist.clear();
        for (std::int32_t h : history) {
          auto it = std::find(cand.begin(), cand.begin() + n, static_cast<std::uint32_t>(h));
          if (it != cand.begin() + n) local_hist.push_back(static_cast<std::int32_t>(it - cand.begin()));
        }
      }
      const float kLn10 = 2.302585092994046f;
      for (std::size_t i = 0; i < n; ++i) row[i] *= kLn10;
      std::size_t need = o.scratch_bytes(static_cast<std::int64_t>(n));
      if (scratch.size() < need) scratch.resize(need);
      std::int32_t pick = o.sampler(row.data(), static_cast<std::int64_t>(n), o.params,
                                    local_hist.data(), static_cast<std::int64_t>(local_hist.size()), key,
                                    scratch.data());
      token = cand[static_cast<std::size_t>(pick)];
    } else {
      row.resize(v);
      model.next_logprobs(state, row.data());
      if (!o.allow_unk) row[kUnk] = -std::numeric_limits<float>::infinity();
      std::size_t need = o.scratch_bytes(static_cast<std::int64_t>(v));
      if (scratch.size() < need) scratch.resize(need);
      std::int32_t pick = o.sampler(row.data(), static_cast<std::int64_t>(v), o.params, history.data(),
                                    static_cast<std::int64_t>(history.size()), key, scratch.data());
      token = static_cast<std::uint32_t>(pick);
    }
    if (token == kEos) {
      if (o.stop_at_eos) break;
      out.push_back(token);
      state = model.begin_sentence_state();
    } else {
      out.push_back(token);
      model.advance(state, token);
    }
    if (penalties) history.push_back(static_cast<std::int32_t>(token));
  }
  return out;
}

}  // namespace aigc::ngram
