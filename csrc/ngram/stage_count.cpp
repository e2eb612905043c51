// Stage 2 (in memory): counting. Every position of the corpus starts a
// window of up to N words that ends at the first </s>. The windows are
// bucketed by their first word (a counting sort), each bucket is sorted, and
// the sorted windows are the depth-first order of the forward trie: the
// nodes of level k are the distinct (k+1)-word prefixes, each with the
// number of windows that end exactly there ("terminal" count). The raw count
// of an n-gram is the number of windows in its subtree.
#include <algorithm>

#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"

namespace aigc::ngram::stages {

namespace {

template <int K>
struct Key {
  std::uint32_t w[K];
  bool operator<(const Key& o) const {
    for (int i = 0; i < K; ++i)
      if (w[i] != o.w[i]) return w[i] < o.w[i];
    return false;
  }
};

// The trie under construction: per level word, first child (levels below
// the top; kSentinel until a child is seen), terminal count.
template <int K>
void build_trie_k(std::vector<Chunk>& chunks, std::size_t vocab_size, unsigned threads,
                  Build& b) {
  const int n = K + 1;
  const std::size_t v = vocab_size;
  const unsigned nchunks = static_cast<unsigned>(chunks.size());
  // Histograms of first words per chunk.
  std::vector<std::vector<std::uint32_t>> hist(nchunks);
  run_threads(nchunks, [&](unsigned c) {
    hist[c].assign(v, 0);
    for (std::uint32_t id : chunks[c].ids) ++hist[c][id];
  });
  std::vector<std::uint64_t> bucket(v + 1, 0);
  for (std::size_t w = 0; w < v; ++w) {
    std::uint64_t s = 0;
    for (unsigned c = 0; c < nchunks; ++c) s += hist[c][w];
    bucket[w + 1] = bucket[w] + s;
  }
  const std::uint64_t positions = bucket[v];
  std::vector<Key<K>> keys(positions);
  // Compute per-chunk start offsets (sequential over v * chunks, cheap).
  {
    std::vector<std::uint64_t> start(v);
    for (std::size_t w = 0; w < v; ++w) start[w] = bucket[w];
    for (unsigned c = 0; c < nchunks; ++c) {
      for (std::size_t w = 0; w < v; ++w) {
        std::uint64_t cnt = hist[c][w];
        hist[c][w] = static_cast<std::uint32_t>(start[w] - bucket[w]);  // offset inside bucket
        start[w] += cnt;
      }
    }
  }
  run_threads(nchunks, [&](unsigned c) {
    const std::vector<std::uint32_t>& ids = chunks[c].ids;
    std::vector<std::uint32_t>& off = hist[c];
    const std::size_t m = ids.size();
    for (std::size_t p = 0; p < m; ++p) {
      std::uint32_t w = ids[p];
      Key<K>& key = keys[bucket[w] + off[w]++];
      std::size_t q = p + 1;
      bool open = w != kEos;
      for (int j = 0; j < K; ++j) {
        if (open) {
          std::uint32_t x = ids[q++];
          key.w[j] = x;
          open = x != kEos;
        } else {
          key.w[j] = kSentinel;
        }
      }
    }
    std::vector<std::uint32_t>().swap(off);
    std::vector<std::uint32_t>().swap(chunks[c].ids);  // the windows hold it all now
  });
  // Split buckets into thread ranges of about equal size.
  std::vector<std::size_t> range(threads + 1, v);
  range[0] = 0;
  {
    std::size_t w = 0;
    for (unsigned t = 1; t < threads; ++t) {
      std::uint64_t target = positions * t / threads;
      while (w < v && bucket[w] < target) ++w;
      range[t] = w;
    }
  }
  // Sort buckets and count nodes per level and thread.
  std::vector<std::vector<std::uint64_t>> nodes(threads, std::vector<std::uint64_t>(n, 0));
  auto walk = [&](unsigned t, bool emit, std::vector<std::uint64_t>* base) {
    std::uint64_t last[kMaxOrder] = {};
    std::vector<std::uint64_t> next(n, 0);
    if (emit) next = *base;
    for (std::size_t w = range[t]; w < range[t + 1]; ++w) {
      Key<K>* kb = keys.data() + bucket[w];
      Key<K>* ke = keys.data() + bucket[w + 1];
      if (!emit) std::sort(kb, ke);
      last[0] = w;
      const Key<K>* prev = nullptr;
      for (Key<K>* k = kb; k < ke; ++k) {
        int len = 0;
        while (len < K && k->w[len] != kSentinel) ++len;
        int common = 0;
        if (prev) {
          while (common < len && prev->w[common] == k->w[common]) ++common;
        }
        for (int j = common; j < len; ++j) {
          std::uint64_t idx = next[j + 1]++;
          if (emit) {
            b.word[j + 1][idx] = k->w[j];
            std::uint32_t& first = b.child[j][last[j]];
            if (first == kSentinel) first = static_cast<std::uint32_t>(idx);
            b.count[j + 1][idx] = 0;
          }
          last[j + 1] = idx;
        }
        if (emit) ++b.count[len][last[len]];
        prev = k;
      }
    }
    if (!emit) nodes[t] = next;
  };
  run_threads(threads, [&](unsigned t) { walk(t, false, nullptr); });
  b.word.assign(n, {});
  b.child.assign(n, {});
  b.count.assign(n, {});
  std::vector<std::vector<std::uint64_t>> base(threads, std::vector<std::uint64_t>(n, 0));
  for (int j = 1; j < n; ++j) {
    std::uint64_t total = 0;
    for (unsigned t = 0; t < threads; ++t) {
      base[t][j] = total;
      total += nodes[t][j];
    }
    if (total >= kSentinel) throw CoreError("too many distinct n-grams for this build (4G limit)");
    b.word[j].resize(total);
    b.count[j].resize(total);
  }
  b.word[0].resize(v);
  for (std::size_t w = 0; w < v; ++w) b.word[0][w] = static_cast<std::uint32_t>(w);
  b.count[0].assign(v, 0);
  for (int j = 0; j + 1 < n; ++j) b.child[j].assign(b.word[j].size() + 1, kSentinel);
  run_threads(threads, [&](unsigned t) { walk(t, true, &base[t]); });
  // Childless nodes: their (empty) range starts where the next one's does.
  for (int j = 0; j + 1 < n; ++j) {
    std::vector<std::uint32_t>& child = b.child[j];
    child.back() = static_cast<std::uint32_t>(b.word[j + 1].size());
    for (std::size_t i = child.size() - 1; i-- > 0;)
      if (child[i] == kSentinel) child[i] = child[i + 1];
  }
}

}  // namespace

void build_trie(std::vector<Chunk>& chunks, std::size_t vocab_size, const Plan& plan, Build& b) {
  const int order = plan.order;
  const unsigned threads = plan.threads;
  b.order = order;
  switch (order) {
    case 2: build_trie_k<1>(chunks, vocab_size, threads, b); break;
    case 3: build_trie_k<2>(chunks, vocab_size, threads, b); break;
    case 4: build_trie_k<3>(chunks, vocab_size, threads, b); break;
    case 5: build_trie_k<4>(chunks, vocab_size, threads, b); break;
    case 6: build_trie_k<5>(chunks, vocab_size, threads, b); break;
    case 7: build_trie_k<6>(chunks, vocab_size, threads, b); break;
    case 8: build_trie_k<7>(chunks, vocab_size, threads, b); break;
    default: {
      // Order 1: only unigram counts.
      b.word.assign(1, {});
      b.child.assign(1, {});
      b.count.assign(1, std::vector<std::uint32_t>(vocab_size, 0));
      b.word[0].resize(vocab_size);
      for (std::size_t w = 0; w < vocab_size; ++w) b.word[0][w] = static_cast<std::uint32_t>(w);
      for (const Chunk& c : chunks)
        for (std::uint32_t id : c.ids) ++b.count[0][id];
    }
  }
}


}  // namespace aigc::ngram::stages
