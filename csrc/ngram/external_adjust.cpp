// Bounded stage 2: adjust counts. The merged windows, in order, walk the
// reversed trie depth first (the path of a window is its n-grams' reversed
// words). A node's raw count is the count of the windows below it; when it
// is closed its adjusted count is its number of children (the distinct words
// that precede the n-gram), or the raw count for the highest order and for
// n-grams that start with <s>. Ranks in suffix order are given as nodes
// open, so every n-gram knows the rank of its suffix (its parent). The
// n-grams go to one sorter per order, in forward (trie) order.
#include "core_error.hpp"
#include "ngram/external.hpp"

namespace aigc::ngram::stages {

template <int N>
void adjust_counts_external(External& ex) {
  const Plan& plan = ex.plan;
  auto& windows = static_cast<WindowSorter<N>&>(*ex.window_sorter);
  const std::size_t v = ex.vocab.size();
  ex.unigram_adjusted.assign(v, 0);
  ex.counts_of_counts.assign(N, CountsOfCounts());
  ex.sizes.assign(N, 0);
  ex.kept.assign(N, 0);
  const std::size_t merge_bytes = static_cast<std::size_t>(ex.budget / 16);
  const std::size_t avail =
      ex.available(windows.memory() + merge_bytes + static_cast<std::uint64_t>(v) * 8);
  ex.grams.clear();
  ex.grams.resize(N + 1);
  std::size_t weight = 0;
  for (int k = 2; k <= N; ++k) with_order(k, [&](auto kc) { weight += sizeof(Gram<decltype(kc)::value>); });
  for (int k = 2; k <= N; ++k)
    with_order(k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      ex.grams[K] = std::make_unique<GramSorter<K>>(ex.dir, "order" + std::to_string(K),
                                                    avail / weight * sizeof(Gram<K>), GramLess<K>{},
                                                    nullptr, plan.threads > 1);
    });

  plan.begin("adjusting counts", ex.windows);
  std::uint32_t word[N] = {};
  std::uint64_t raw[N] = {};
  std::uint32_t children[N] = {};
  std::uint32_t rank[N] = {};
  std::uint64_t next_rank[N] = {};
  int depth = 0;  // open nodes: [0, depth)

  auto close = [&](int d) {
    const int k = d + 1;
    if (raw[d] >= kPrunedBit)
      throw CoreError("an n-gram occurs 2G times or more: too many for this build");
    const std::uint32_t adj =
        (k == N || word[d] == kBos) ? static_cast<std::uint32_t>(raw[d]) : children[d];
    if (d == 0) {
      ex.unigram_adjusted[word[0]] = adj;
      return;
    }
    const bool pruned = plan.pruned(k, raw[d]);
    ex.counts_of_counts[d].add(adj);
    ex.kept[d] += !pruned;
    with_order(k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      if constexpr (K >= 2 && K <= N) {
        Gram<K> g;
        for (int i = 0; i < K; ++i) g.w[i] = word[d - i];
        g.counted = adj | (pruned ? kPrunedBit : 0u);
        g.self = rank[d];
        g.suffix = rank[d - 1];
        static_cast<GramSorter<K>&>(*ex.grams[K]).push(g);
      }
    });
  };
  auto open = [&](int d, std::uint32_t w) {
    word[d] = w;
    raw[d] = 0;
    children[d] = 0;
    if (d == 0) {
      rank[d] = w;
    } else {
      if (next_rank[d] >= kSentinel) throw CoreError("too many distinct n-grams for this build (4G limit)");
      rank[d] = static_cast<std::uint32_t>(next_rank[d]++);
      ++children[d - 1];
    }
  };

  {
    auto merger = windows.merge(merge_bytes);
    std::uint64_t seen = 0;
    while (const WindowCount<N>* r = merger.next()) {
      int len = 0;
      while (len < N && r->w[len] != kSentinel) ++len;
      int common = 0;
      while (common < depth && common < len && word[common] == r->w[common]) ++common;
      while (depth > common) close(--depth);
      for (; depth < len; ++depth) open(depth, r->w[depth]);
      for (int d = 0; d < len; ++d) raw[d] += r->count;
      if ((++seen & 0xFFFF) == 0) plan.advance(0x10000);
    }
    while (depth > 0) close(--depth);
  }
  ex.window_sorter.reset();  // its runs are removed

  ex.sizes[0] = v;
  ex.kept[0] = v;
  for (int d = 1; d < N; ++d) ex.sizes[d] = next_rank[d];
  ex.unigram_adjusted[kUnk] = 0;
  ex.unigram_adjusted[kBos] = 0;
  for (std::uint32_t c : ex.unigram_adjusted) ex.counts_of_counts[0].add(c);
  for (int k = 2; k <= N; ++k)
    with_order(k, [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      static_cast<GramSorter<K>&>(*ex.grams[K]).finish();
    });
}

#define AIGC_INSTANTIATE(N) template void adjust_counts_external<N>(External&);
AIGC_INSTANTIATE(1)
AIGC_INSTANTIATE(2)
AIGC_INSTANTIATE(3)
AIGC_INSTANTIATE(4)
AIGC_INSTANTIATE(5)
AIGC_INSTANTIATE(6)
AIGC_INSTANTIATE(7)
AIGC_INSTANTIATE(8)
#undef AIGC_INSTANTIATE

}  // namespace aigc::ngram::stages
