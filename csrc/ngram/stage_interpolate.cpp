// Stage 5 (in memory): probabilities level by level (linear float, then
// log10 once the next level no longer needs them), backoffs, and the
// removal of pruned n-grams. The counts of a level are freed once its
// probabilities are known.
#include "ngram/estimate_stages.hpp"

namespace aigc::ngram::stages {

namespace {

void remove_pruned(std::vector<Level>& levels, const Counts& counts, int order) {
  for (int k = 1; k < order; ++k) {
    const std::vector<char>& pruned = counts.pruned[k];
    if (pruned.empty()) continue;
    Level& pl = levels[k - 1];
    Level& lv = levels[k];
    std::vector<std::uint32_t> newidx(lv.size() + 1);
    std::uint32_t kept = 0;
    for (std::size_t i = 0; i < lv.size(); ++i) {
      newidx[i] = kept;
      if (!pruned[i]) {
        lv.word[kept] = lv.word[i];
        lv.prob[kept] = lv.prob[i];
        if (k + 1 < order) {
          lv.backoff[kept] = lv.backoff[i];
          lv.child[kept] = lv.child[i];
        }
        ++kept;
      }
    }
    newidx[lv.size()] = kept;
    if (k + 1 < order) lv.child[kept] = lv.child[lv.size()];
    for (auto& c : pl.child) c = newidx[c];
    lv.word.resize(kept);
    lv.prob.resize(kept);
    if (k + 1 < order) {
      lv.backoff.resize(kept);
      lv.child.resize(kept + 1);
    }
    // Children of pruned nodes are pruned too (non-decreasing thresholds
    // on raw counts), so the next level's ranges stay consistent once that
    // level is compacted; their child indices are remapped then.
  }
}

}  // namespace

void interpolate(std::vector<Level>& levels, Counts& counts, const std::vector<Discount>& discounts,
                 const Plan& plan) {
  const int order = plan.order;
  const unsigned threads = plan.threads;
  levels[0].prob = unigram_probs(counts.adjusted[0], discounts[0]);
  std::vector<std::uint32_t>().swap(counts.adjusted[0]);
  plan.advance(1);
  for (int k = 1; k < order; ++k) {
    const std::vector<std::uint32_t>& sx = counts.suffix[k];
    const std::vector<std::uint32_t>& adj = counts.adjusted[k];
    Level& pl = levels[k - 1];
    Level& lv = levels[k];
    pl.backoff.assign(pl.size(), 1.0f);
    lv.prob.resize(lv.size());
    const Discount& d = discounts[k];
    float* cur = lv.prob.data();
    const std::vector<char>* pr = counts.pruned[k].empty() ? nullptr : &counts.pruned[k];
    // The suffixes of level-k nodes are level-(k-1) nodes, still linear.
    const float* lower_sfx = pl.prob.data();
    parallel_for(pl.size(), threads, 2048, [&](std::size_t s, std::size_t e) {
      for (std::size_t p = s; p < e; ++p) {
        std::uint32_t cb = pl.child[p], ce = pl.child[p + 1];
        if (cb == ce) continue;
        ContextStats st;
        for (std::uint32_t c = cb; c < ce; ++c) st.add(adj[c], pr && (*pr)[c]);
        const float gamma = kn_gamma(d, st);
        if (keeps_backoff(pl.word[p])) pl.backoff[p] = gamma;
        for (std::uint32_t c = cb; c < ce; ++c) cur[c] = kn_prob(d, adj[c], st, gamma, lower_sfx[sx[c]]);
      }
    });
    std::vector<std::uint32_t>().swap(counts.suffix[k]);
    std::vector<std::uint32_t>().swap(counts.adjusted[k]);
    // Level k-1 is now final: to log10.
    parallel_for(pl.size(), threads, 1 << 16, [&](std::size_t s, std::size_t e) {
      for (std::size_t i = s; i < e; ++i) {
        pl.prob[i] = log_prob(pl.prob[i]);
        pl.backoff[i] = log_backoff(pl.backoff[i]);
      }
    });
    plan.advance(1);
  }
  // The suffix of a level-k node is in level k-1, whose probabilities were
  // converted to log10 above only after level k was computed.
  Level& top = levels[order - 1];
  parallel_for(top.size(), threads, 1 << 16, [&](std::size_t s, std::size_t e) {
    for (std::size_t i = s; i < e; ++i) top.prob[i] = log_prob(top.prob[i]);
  });
  if (plan.pruning) remove_pruned(levels, counts, order);
}

}  // namespace aigc::ngram::stages
