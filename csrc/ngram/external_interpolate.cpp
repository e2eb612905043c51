// Bounded stages 4 and 5: initial probabilities and interpolation, order by
// order, and the output. The n-grams of order K come in forward order, so
// the children of a context are together: their sums give the context's
// backoff and each one's probability (c - D(c)) / sum + backoff * p(suffix),
// with p(suffix) by rank from order K-1 (kept as one float per n-gram). The
// n-grams of order K-1, walked in step in the same order, are written out
// with their final probability and backoff as their contexts come by.
#include <cstring>

#include "core_error.hpp"
#include "ngram/external.hpp"

namespace aigc::ngram::stages {

namespace {

// The n-grams of the order below in forward order: word ids for unigrams.
template <int K>
class Lower {
 public:
  Lower(External& ex, std::size_t bytes) {
    if constexpr (K >= 2) {
      merger_ = std::make_unique<typename GramSorter<K>::Merger>(
          static_cast<GramSorter<K>&>(*ex.grams[K]).merge(bytes));
    } else {
      v_ = ex.vocab.size();
    }
    advance();
  }
  const Gram<K>* get() const { return cur_; }
  void advance() {
    if constexpr (K >= 2) {
      cur_ = merger_->next();
    } else {
      if (next_ < v_) {
        uni_.w[0] = next_;
        uni_.self = next_;
        uni_.counted = 0;
        ++next_;
        cur_ = &uni_;
      } else {
        cur_ = nullptr;
      }
    }
  }

 private:
  std::unique_ptr<typename GramSorter<K>::Merger> merger_;
  std::uint32_t next_ = 0;
  std::size_t v_ = 0;
  Gram<K> uni_{};
  const Gram<K>* cur_ = nullptr;
};

template <int K>
int compare_context(const Gram<K - 1>& lower, const Gram<K>& g) {
  for (int i = 0; i < K - 1; ++i)
    if (lower.w[i] != g.w[i]) return lower.w[i] < g.w[i] ? -1 : 1;
  return 0;
}

template <int K>
void interpolate_order(External& ex, const Discount& d, std::vector<float>& lower_p,
                       GramSink& sink) {
  static_assert(K >= 2, "orders from 2");
  const Plan& plan = ex.plan;
  plan.begin("estimating order " + std::to_string(K), ex.sizes[K - 1]);
  std::vector<float> cur_p(ex.sizes[K - 1], 0.0f);
  const std::size_t bytes = static_cast<std::size_t>(ex.budget / 16);
  auto merger = static_cast<GramSorter<K>&>(*ex.grams[K]).merge(bytes);
  Lower<K - 1> lower(ex, bytes);
  std::uint64_t kept = 0;  // n-grams of order K written so far (their index)
  auto emit_lower = [&](const Gram<K - 1>& g, float backoff) {
    if (!g.pruned())
      sink.add(K - 1, g.w, log_prob(lower_p[g.self]), log_backoff(backoff), kept);
  };
  std::vector<Gram<K>> group;
  const Gram<K>* r = merger.next();
  while (r) {
    group.clear();
    group.push_back(*r);
    while ((r = merger.next()) && std::memcmp(r->w, group[0].w, sizeof(std::uint32_t) * (K - 1)) == 0)
      group.push_back(*r);
    ContextStats st;
    std::uint64_t kept_here = 0;
    for (const Gram<K>& g : group) {
      st.add(g.adjusted(), g.pruned());
      kept_here += !g.pruned();
    }
    const float gamma = kn_gamma(d, st);
    for (const Gram<K>& g : group)
      cur_p[g.self] = kn_prob(d, g.adjusted(), st, gamma, lower_p[g.suffix]);
    // The order below up to this context (those before it have no children).
    int c;
    while (lower.get() && (c = compare_context<K>(*lower.get(), group[0])) < 0) {
      emit_lower(*lower.get(), 1.0f);
      lower.advance();
    }
    if (!lower.get() || compare_context<K>(*lower.get(), group[0]) != 0)
      throw CoreError("internal error: the context of an n-gram is missing");
    emit_lower(*lower.get(), keeps_backoff(group[0].w[K - 2]) ? gamma : 1.0f);
    lower.advance();
    kept += kept_here;
    plan.advance(group.size());
  }
  while (lower.get()) {
    emit_lower(*lower.get(), 1.0f);
    lower.advance();
  }
  lower_p.swap(cur_p);
  if constexpr (K >= 3) ex.grams[K - 1].reset();  // its runs are removed
}

template <int K>
void write_highest(External& ex, const std::vector<float>& p, GramSink& sink) {
  ex.plan.begin("writing order " + std::to_string(K), ex.sizes[K - 1]);
  if constexpr (K == 1) {
    for (std::uint32_t w = 0; w < ex.vocab.size(); ++w) sink.add(1, &w, log_prob(p[w]), 0.0f, 0);
  } else {
    auto merger = static_cast<GramSorter<K>&>(*ex.grams[K]).merge(static_cast<std::size_t>(ex.budget / 16));
    while (const Gram<K>* g = merger.next())
      if (!g->pruned()) sink.add(K, g->w, log_prob(p[g->self]), 0.0f, 0);
    ex.grams[K].reset();
  }
}

}  // namespace

void interpolate_external(External& ex, const std::vector<Discount>& discounts, GramSink& sink) {
  const int order = ex.plan.order;
  std::vector<float> p = unigram_probs(ex.unigram_adjusted, discounts[0]);
  std::vector<std::uint32_t>().swap(ex.unigram_adjusted);
  sink.start(ex.vocab, ex.kept);
  for (int k = 2; k <= order; ++k)
    with_order(k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      if constexpr (K >= 2) interpolate_order<K>(ex, discounts[K - 1], p, sink);
    });
  with_order(order, [&](auto kc) { write_highest<decltype(kc)::value>(ex, p, sink); });
  sink.finish();
}

}  // namespace aigc::ngram::stages
