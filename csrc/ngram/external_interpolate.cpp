// Bounded stages 4 and 5: initial probabilities and interpolation, order by
// order, and the output. The n-grams of order K come in forward order, so
// the children of a context are together: their sums give the context's
// backoff and each one's probability (c - D(c)) / sum + backoff * p(suffix),
// with p(suffix) by rank from order K-1. The n-grams of order K-1, walked in
// step in the same order, are written out with their final probability and
// backoff as their contexts come by.
//
// The probabilities of an order are one float per n-gram by rank in memory
// while those of two adjacent orders fit in 60% of the budget. Past that they
// spill (OrderProbs): the partial terms of order K are sorted by rank, whose
// order is also that of their suffixes' ranks, so p(suffix) is read in step
// from the order below's file of probabilities in rank order; the results go
// to a file in rank order (for the order above) and to a sorter by forward
// position (for writing the order out).
#include <cstring>
#include <memory>
#include <string>

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

// A partial term of an n-gram's probability: p = un + gamma * p(suffix).
struct Partial {
  std::uint32_t self, suffix, fwd;
  float un, gamma;
};
struct BySelf {
  bool operator()(const Partial& a, const Partial& b) const { return a.self < b.self; }
};
struct FwdProb {
  std::uint32_t fwd;
  float p;
};
struct ByFwd {
  bool operator()(const FwdProb& a, const FwdProb& b) const { return a.fwd < b.fwd; }
};
using FwdSorter = Sorter<FwdProb, ByFwd>;

// The probabilities of one order: by rank in memory, or spilled.
struct OrderProbs {
  bool spilled = false;
  std::vector<float> by_rank;        // in memory
  std::string rank_file;             // spilled: the floats in rank order
  std::unique_ptr<FwdSorter> by_fwd;  // spilled: (forward position, p)
};

// A spilled order's probabilities in forward order, one per n-gram.
class ForwardProbs {
 public:
  ForwardProbs(const FwdSorter& s, std::size_t bytes) : merger_(s.merge(bytes)) {}
  float next() {
    const FwdProb* r = merger_.next();
    if (!r || r->fwd != expect_++) throw CoreError("internal error: a spilled probability is missing");
    return r->p;
  }

 private:
  FwdSorter::Merger merger_;
  std::uint32_t expect_ = 0;
};

// A spilled order's probabilities read by non-decreasing rank.
class RankedProbs {
 public:
  RankedProbs(const std::string& path, std::size_t bytes) : reader_(path, sizeof(float), bytes) {}
  float at(std::uint32_t rank) {
    while (next_ <= rank) {
      const char* r = reader_.next();
      if (!r) throw CoreError("internal error: a spilled probability is missing");
      std::memcpy(&cur_, r, sizeof cur_);
      ++next_;
    }
    return cur_;
  }

 private:
  SpillReader reader_;
  std::uint64_t next_ = 0;
  float cur_ = 0.0f;
};

template <int K>
int compare_context(const Gram<K - 1>& lower, const Gram<K>& g) {
  for (int i = 0; i < K - 1; ++i)
    if (lower.w[i] != g.w[i]) return lower.w[i] < g.w[i] ? -1 : 1;
  return 0;
}

template <int K>
OrderProbs interpolate_order(External& ex, const Discount& d, OrderProbs& lower, GramSink& sink) {
  static_assert(K >= 2, "orders from 2");
  const Plan& plan = ex.plan;
  plan.begin("estimating order " + std::to_string(K), ex.sizes[K - 1]);
  const std::size_t bytes = static_cast<std::size_t>(ex.budget / 16);
  OrderProbs cur;
  cur.spilled = lower.spilled || (ex.sizes[K - 1] + ex.sizes[K - 2]) * 4 > ex.budget / 10 * 6;
  std::unique_ptr<Sorter<Partial, BySelf>> partials;
  ex.spilled_orders += cur.spilled;
  if (cur.spilled)
    partials = std::make_unique<Sorter<Partial, BySelf>>(ex.dir, "partial" + std::to_string(K),
                                                         bytes, BySelf{});
  else
    cur.by_rank.assign(ex.sizes[K - 1], 0.0f);
  std::unique_ptr<ForwardProbs> lower_fwd;
  if (lower.spilled) lower_fwd = std::make_unique<ForwardProbs>(*lower.by_fwd, bytes);
  auto merger = static_cast<GramSorter<K>&>(*ex.grams[K]).merge(bytes);
  Lower<K - 1> walk(ex, bytes);
  std::uint64_t kept = 0;  // n-grams of order K written so far (their index)
  std::uint32_t fwd = 0;   // forward position of the next n-gram of order K
  // Every n-gram of the order below comes by once, in forward order.
  auto emit_lower = [&](const Gram<K - 1>& g, float backoff) {
    const float p = lower_fwd ? lower_fwd->next() : lower.by_rank[g.self];
    if (!g.pruned()) sink.add(K - 1, g.w, log_prob(p), log_backoff(backoff), kept);
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
    for (const Gram<K>& g : group) {
      if (partials)
        partials->push({g.self, g.suffix, fwd, kn_uninterpolated(d, g.adjusted(), st), gamma});
      else
        cur.by_rank[g.self] = kn_prob(d, g.adjusted(), st, gamma, lower.by_rank[g.suffix]);
      ++fwd;
    }
    // The order below up to this context (those before it have no children).
    int c;
    while (walk.get() && (c = compare_context<K>(*walk.get(), group[0])) < 0) {
      emit_lower(*walk.get(), 1.0f);
      walk.advance();
    }
    if (!walk.get() || compare_context<K>(*walk.get(), group[0]) != 0)
      throw CoreError("internal error: the context of an n-gram is missing");
    emit_lower(*walk.get(), keeps_backoff(group[0].w[K - 2]) ? gamma : 1.0f);
    walk.advance();
    kept += kept_here;
    plan.advance(group.size());
  }
  while (walk.get()) {
    emit_lower(*walk.get(), 1.0f);
    walk.advance();
  }
  if (partials) {
    // By rank: p(suffix) in step from the order below; the results in rank order.
    partials->finish();
    auto in_rank = partials->merge(bytes);
    std::unique_ptr<RankedProbs> lower_rank;
    if (lower.spilled) lower_rank = std::make_unique<RankedProbs>(lower.rank_file, bytes);
    // The file by rank is for the order above; the highest order needs none.
    std::unique_ptr<SpillWriter> out;
    if (K < plan.order) {
      cur.rank_file = ex.dir.new_file("probs" + std::to_string(K));
      out = std::make_unique<SpillWriter>(ex.dir, cur.rank_file,
                                          std::min<std::size_t>(bytes, 1 << 20));
    }
    cur.by_fwd = std::make_unique<FwdSorter>(ex.dir, "fwd" + std::to_string(K), bytes, ByFwd{});
    std::uint32_t rank = 0;
    while (const Partial* q = in_rank.next()) {
      if (q->self != rank++) throw CoreError("internal error: an n-gram's rank is missing");
      const float ps = lower_rank ? lower_rank->at(q->suffix) : lower.by_rank[q->suffix];
      const float p = q->un + q->gamma * ps;
      if (out) out->write(&p, sizeof p);
      cur.by_fwd->push({q->fwd, p});
    }
    if (out) out->close();
    cur.by_fwd->finish();
  }
  if (lower.spilled) ex.dir.remove_file(lower.rank_file);
  if constexpr (K >= 3) ex.grams[K - 1].reset();  // its runs are removed
  return cur;
}

template <int K>
void write_highest(External& ex, OrderProbs& p, GramSink& sink) {
  ex.plan.begin("writing order " + std::to_string(K), ex.sizes[K - 1]);
  if constexpr (K == 1) {
    for (std::uint32_t w = 0; w < ex.vocab.size(); ++w)
      sink.add(1, &w, log_prob(p.by_rank[w]), 0.0f, 0);
  } else {
    const std::size_t bytes = static_cast<std::size_t>(ex.budget / 16);
    std::unique_ptr<ForwardProbs> fwd;
    if (p.spilled) fwd = std::make_unique<ForwardProbs>(*p.by_fwd, bytes);
    auto merger = static_cast<GramSorter<K>&>(*ex.grams[K]).merge(bytes);
    while (const Gram<K>* g = merger.next()) {
      const float prob = fwd ? fwd->next() : p.by_rank[g->self];
      if (!g->pruned()) sink.add(K, g->w, log_prob(prob), 0.0f, 0);
    }
    ex.grams[K].reset();
  }
}

}  // namespace

void interpolate_external(External& ex, const std::vector<Discount>& discounts, GramSink& sink) {
  const int order = ex.plan.order;
  OrderProbs p;  // unigrams: by word id, in memory
  p.by_rank = unigram_probs(ex.unigram_adjusted, discounts[0]);
  std::vector<std::uint32_t>().swap(ex.unigram_adjusted);
  sink.start(ex.vocab, ex.kept);
  for (int k = 2; k <= order; ++k)
    with_order(k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      if constexpr (K >= 2) p = interpolate_order<K>(ex, discounts[K - 1], p, sink);
    });
  with_order(order, [&](auto kc) { write_highest<decltype(kc)::value>(ex, p, sink); });
  sink.finish();
}

}  // namespace aigc::ngram::stages
