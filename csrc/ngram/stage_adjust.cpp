// Stage 3 (in memory): adjusting counts. Raw counts are subtree sums of the
// terminal counts; pruning marks come from them; each node is linked to its
// suffix (the n-gram without its first word); the adjusted count of an
// n-gram below the highest order and outside the <s> subtree is the number
// of distinct words that precede it (the nodes whose suffix it is).
#include <algorithm>
#include <cstring>

#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"

namespace aigc::ngram::stages {

namespace {

// The nodes p of `pl` that have children, ordered by suffix[p] (< keys), in
// increasing p within a suffix: a least-significant-digit radix sort in two
// passes of half the key's bits each, so that each pass's buckets stay in
// cache (one counting sort over all keys scatters into an array as large as
// the level above).
std::vector<std::uint32_t> parents_by_suffix(const Level& pl,
                                             const std::vector<std::uint32_t>& suffix,
                                             std::size_t keys) {
  std::vector<std::uint32_t> a;
  a.reserve(pl.size());
  for (std::uint32_t p = 0; p < pl.size(); ++p)
    if (pl.child[p] != pl.child[p + 1]) a.push_back(p);
  unsigned bits = 1;
  while ((std::uint64_t{1} << bits) < keys) ++bits;
  const unsigned digit = (bits + 1) / 2;
  const std::uint32_t mask = (std::uint32_t{1} << digit) - 1;
  std::vector<std::uint32_t> count(std::size_t{mask} + 2);
  // Pass 1 (low digit): a -> b, with each one's key alongside for pass 2.
  std::vector<std::uint32_t> b(a.size()), b_key(a.size());
  for (std::uint32_t p : a) ++count[(suffix[p] & mask) + 1];
  for (std::size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  for (std::uint32_t p : a) {
    const std::uint32_t key = suffix[p];
    const std::uint32_t at = count[key & mask]++;
    b[at] = p;
    b_key[at] = key;
  }
  // Pass 2 (high digit): b -> a.
  std::fill(count.begin(), count.end(), 0);
  for (std::uint32_t key : b_key) ++count[(key >> digit) + 1];  // key >> digit <= mask
  for (std::size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  for (std::size_t i = 0; i < b.size(); ++i) a[count[b_key[i] >> digit]++] = b[i];
  return a;
}

}  // namespace

void adjust_counts(std::vector<Level>& levels, Build& b, const Plan& plan, Counts& counts) {
  const int order = plan.order;
  const unsigned threads = plan.threads;
  levels.resize(order);
  for (int k = 0; k < order; ++k) {
    levels[k].word = std::move(b.word[k]);
    if (k + 1 < order) levels[k].child = std::move(b.child[k]);
  }
  std::vector<std::vector<std::uint32_t>>& cnts = counts.adjusted;
  cnts = std::move(b.count);
  // Raw counts: terminal + children.
  for (int k = order - 2; k >= 0; --k) {
    const Level& lv = levels[k];
    std::uint32_t* cnt = cnts[k].data();
    const std::uint32_t* up = cnts[k + 1].data();
    parallel_for(lv.size(), threads, 4096, [&](std::size_t s, std::size_t e) {
      for (std::size_t i = s; i < e; ++i) {
        std::uint64_t sum = cnt[i];
        for (std::uint32_t c = lv.child[i]; c < lv.child[i + 1]; ++c) sum += up[c];
        cnt[i] = static_cast<std::uint32_t>(sum);
      }
    });
  }
  // Pruning marks from raw counts (orders >= 2).
  counts.pruned.assign(order, {});
  if (plan.pruning) {
    for (int k = 1; k < order; ++k) {
      if (plan.prune[k] == 0) continue;
      std::vector<char>& pr = counts.pruned[k];
      pr.resize(levels[k].size());
      const std::uint32_t* cnt = cnts[k].data();
      for (std::size_t i = 0; i < levels[k].size(); ++i) pr[i] = plan.pruned(k + 1, cnt[i]);
    }
  }
  // The <s> subtree: [bos_begin[k], bos_end[k]) at each level keep raw counts.
  std::vector<std::uint32_t> bos_begin(order), bos_end(order);
  bos_begin[0] = kBos;
  bos_end[0] = kBos + 1;
  for (int k = 1; k < order; ++k) {
    bos_begin[k] = levels[k - 1].child[bos_begin[k - 1]];
    bos_end[k] = levels[k - 1].child[bos_end[k - 1]];
  }
  // Suffix of each node of level k (a node of level k-1), from the suffixes
  // of level k-1: sfx(p w) = the child w of sfx(p). The children of p are
  // sorted, so each search gallops forward from the previous hit.
  std::vector<std::vector<std::uint32_t>>& sfx = counts.suffix;
  sfx.assign(order, {});
  for (int k = 1; k < order; ++k) {
    const Level& pl = levels[k - 1];
    const Level& lv = levels[k];
    std::vector<std::uint32_t>& out = sfx[k];
    out.resize(lv.size());
    if (k == 1) {
      std::memcpy(out.data(), lv.word.data(), lv.size() * 4);
      continue;
    }
    const std::vector<std::uint32_t>& prev = sfx[k - 1];
    const Level& sl = levels[k - 2];  // the level of sfx(p)
    const std::uint32_t* targets = lv.word.data();
    const std::uint32_t* words = pl.word.data();  // the children of sfx(p) are in level k-1
    // Visit the parents grouped by their suffix, so that the children of
    // each suffix stay in cache while all its left extensions are searched.
    std::vector<std::uint32_t> perm = parents_by_suffix(pl, prev, sl.size());
    parallel_for(perm.size(), threads, 4096, [&](std::size_t s, std::size_t e) {
      for (std::size_t i = s; i < e; ++i) {
        const std::uint32_t p = perm[i];
        const std::uint32_t cb = pl.child[p], ce = pl.child[p + 1];
        const std::uint32_t q = prev[p];
        std::uint32_t lo = sl.child[q];
        const std::uint32_t hi = sl.child[q + 1];
        for (std::uint32_t c = cb; c < ce; ++c) {
          const std::uint32_t w = targets[c];
          // Gallop: find a bound with words[lo + step] >= w.
          std::uint32_t step = 1, base = lo;
          while (base + step < hi && words[base + step] < w) {
            base += step;
            step <<= 1;
          }
          std::uint32_t l = base, r = std::min(hi, base + step + 1);
          while (l < r) {
            std::uint32_t mid = l + (r - l) / 2;
            if (words[mid] < w)
              l = mid + 1;
            else
              r = mid;
          }
          if (l >= hi || words[l] != w) throw CoreError("internal error: an n-gram's suffix is missing");
          out[c] = l;
          lo = l + 1;
        }
      }
    });
  }
  // Adjusted counts for levels below the top, outside the <s> subtree.
  for (int k = 1; k < order; ++k) {
    std::uint32_t* cnt = cnts[k - 1].data();
    std::vector<std::uint32_t> adj(levels[k - 1].size(), 0);
    const std::vector<std::uint32_t>& sx = sfx[k];
    parallel_for(sx.size(), threads, 1 << 16, [&](std::size_t s, std::size_t e) {
      for (std::size_t i = s; i < e; ++i) __atomic_fetch_add(&adj[sx[i]], 1u, __ATOMIC_RELAXED);
    });
    for (std::size_t i = 0; i < adj.size(); ++i)
      if (i < bos_begin[k - 1] || i >= bos_end[k - 1]) cnt[i] = adj[i];
  }
  cnts[0][kUnk] = 0;
  cnts[0][kBos] = 0;
}

}  // namespace aigc::ngram::stages
