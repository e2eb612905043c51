#include "ngram/generate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "parallel.hpp"
#include "sampling/row_common.hpp"

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

namespace {

// Log-probabilities of one draw from the distribution it used: the chosen
// token's and the `want` most probable kept tokens' (ties by token id).
void record_logprobs(const float* row, std::int64_t n, const std::uint32_t* ids,
                     const sampling::SamplingParams& params, std::int32_t pick, int want,
                     void* scratch, std::vector<float>& probs, std::vector<std::int32_t>& order,
                     GenerateResult& out) {
  probs.resize(static_cast<std::size_t>(n));
  sampling::filter_row(row, n, params, nullptr, 0, scratch, probs.data(), nullptr);
  out.logprobs.push_back(std::log(probs[static_cast<std::size_t>(pick)]));
  if (want <= 0) return;
  auto id_of = [&](std::int32_t i) { return ids ? ids[i] : static_cast<std::uint32_t>(i); };
  order.clear();
  for (std::int64_t i = 0; i < n; ++i)
    if (probs[static_cast<std::size_t>(i)] > 0.0f) order.push_back(static_cast<std::int32_t>(i));
  const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(want), order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](std::int32_t a, std::int32_t b) {
                      const float pa = probs[static_cast<std::size_t>(a)];
                      const float pb = probs[static_cast<std::size_t>(b)];
                      return pa > pb || (pa == pb && id_of(a) < id_of(b));
                    });
  for (std::size_t j = 0; j < static_cast<std::size_t>(want); ++j) {
    if (j < k) {
      out.top_ids.push_back(static_cast<std::int32_t>(id_of(order[j])));
      out.top_logprobs.push_back(std::log(probs[static_cast<std::size_t>(order[j])]));
    } else {
      out.top_ids.push_back(-1);
      out.top_logprobs.push_back(-std::numeric_limits<float>::infinity());
    }
  }
}

}  // namespace

GenerateResult generate(const Model& model, const TopKIndex* index, const std::uint32_t* prompt,
                        std::size_t prompt_len, const GenerateOptions& o) {
  const std::size_t v = model.vocab_size();
  for (std::size_t i = 0; i < prompt_len; ++i)
    if (prompt[i] >= v)
      throw std::out_of_range("prompt id " + std::to_string(prompt[i]) + " at position " +
                              std::to_string(i) + " is outside the vocabulary of " +
                              std::to_string(v) + " words");
  for (std::size_t i = 0; i < o.history_len; ++i)
    if (o.history_ids[i] >= v)
      throw std::out_of_range("history id " + std::to_string(o.history_ids[i]) +
                              " is outside the vocabulary of " + std::to_string(v) + " words");
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
  const sampling::SamplingParams& p = o.params;
  const bool penalties = sampling::has_penalties(p);
  // The draw sees penalised scores, so it runs without the sampler's own penalties.
  sampling::SamplingParams draw = p;
  draw.repetition_penalty = 1.0f;
  draw.presence_penalty = 0.0f;
  draw.frequency_penalty = 0.0f;
  // Distinct penalised tokens (sorted, for a candidate order that depends on
  // the set only) and their counts.
  std::vector<std::uint32_t> uniq;
  std::unordered_map<std::uint32_t, std::int32_t> counts;
  if (penalties) {
    for (std::size_t i = 0; i < o.history_len; ++i) {
      if (o.history_counts[i] <= 0) continue;
      if (counts.emplace(o.history_ids[i], o.history_counts[i]).second)
        uniq.push_back(o.history_ids[i]);
    }
    std::sort(uniq.begin(), uniq.end());
  }
  std::vector<std::uint8_t> banned(o.min_tokens > o.first_step ? v : 0, 0);
  for (std::uint32_t b : o.ban_ids)
    if (b < banned.size()) banned[b] = 1;
  const float kNegInf = -std::numeric_limits<float>::infinity();
  const float kLn10 = 2.302585092994046f;
  GenerateResult res;
  res.tokens.reserve(std::min<std::size_t>(o.max_tokens, 1 << 16));
  std::vector<std::uint32_t> cand;
  std::vector<float> row, probs;
  std::vector<std::int32_t> order;
  std::vector<char> scratch;
  for (std::size_t step = 0; step < o.max_tokens; ++step) {
    const sampling::DrawKey key{o.seed, o.stream, o.first_step + step};
    const bool ban = o.first_step + step < o.min_tokens && !o.ban_ids.empty();
    std::size_t n;
    const std::uint32_t* ids = nullptr;
    if (use_top_k) {
      // Room for the banned tokens too, so k allowed candidates remain.
      const std::size_t want = static_cast<std::size_t>(p.top_k) + uniq.size() +
                               (ban ? o.ban_ids.size() : 0);
      cand.resize(want + uniq.size());
      row.resize(want + uniq.size());
      n = index->top_k(state, want, o.allow_unk, cand.data(), row.data());
      if (penalties) {
        for (std::uint32_t h : uniq) {
          if (h == kBos || (h == kUnk && !o.allow_unk)) continue;
          if (std::find(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(n), h) !=
              cand.begin() + static_cast<std::ptrdiff_t>(n))
            continue;
          State tmp;
          cand[n] = h;
          row[n] = model.score_word(state, h, tmp);
          ++n;
        }
      }
      for (std::size_t i = 0; i < n; ++i) row[i] *= kLn10;
      if (penalties)
        for (std::size_t i = 0; i < n; ++i) {
          auto it = counts.find(cand[i]);
          if (it != counts.end())
            row[i] = sampling::penalised_logit(row[i], it->second, p.repetition_penalty,
                                               p.presence_penalty, p.frequency_penalty);
        }
      if (ban)
        for (std::size_t i = 0; i < n; ++i)
          if (cand[i] < banned.size() && banned[cand[i]]) row[i] = kNegInf;
      ids = cand.data();
    } else {
      n = v;
      row.resize(v);
      model.next_logprobs(state, row.data());
      if (!o.allow_unk) row[kUnk] = kNegInf;
      for (const auto& [tok, c] : counts)
        row[tok] = sampling::penalised_logit(row[tok], c, p.repetition_penalty, p.presence_penalty,
                                             p.frequency_penalty);
      if (ban)
        for (std::uint32_t b : o.ban_ids)
          if (b < v) row[b] = kNegInf;
    }
    const std::int64_t len = static_cast<std::int64_t>(n);
    const std::size_t need = o.scratch_bytes(len);
    if (scratch.size() < need) scratch.resize(need);
    const std::int32_t pick = o.sampler(row.data(), len, draw, nullptr, 0, key, scratch.data());
    const std::uint32_t token = ids ? ids[pick] : static_cast<std::uint32_t>(pick);
    if (o.logprobs >= 0)
      record_logprobs(row.data(), len, ids, draw, pick, o.logprobs, scratch.data(), probs, order,
                      res);
    if (token == kEos && o.stop_at_eos) {
      res.stopped_at_eos = true;
      break;
    }
    res.tokens.push_back(token);
    if (token == kEos)
      state = model.begin_sentence_state();
    else
      model.advance(state, token);
    if (penalties) {
      auto [it, fresh] = counts.emplace(token, 0);
      ++it->second;
      if (fresh) uniq.insert(std::lower_bound(uniq.begin(), uniq.end(), token), token);
    }
  }
  return res;
}

}  // namespace aigc::ngram
