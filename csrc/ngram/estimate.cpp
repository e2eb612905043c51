// Counting and modified Kneser-Ney estimation with lmplz's arithmetic.
//
// Counting: the corpus becomes one id array "<s> w1 .. wm </s> <s> ...". Every
// position starts a window of up to N words that ends at the first </s>. The
// windows are bucketed by their first word (a counting sort), each bucket is
// sorted, and the sorted windows are the depth-first order of the forward
// trie: the nodes of level k are the distinct (k+1)-word prefixes, each with
// the number of windows that end exactly there ("terminal" count). The raw
// count of an n-gram is the number of windows in its subtree.
//
// Kneser-Ney (as lmplz): the highest order and n-grams that start with <s>
// keep raw counts; other n-grams get the number of distinct words that
// precede them (the number of (n+1)-grams whose suffix they are). Discounts
// from the counts of counts of each order (Chen & Goodman eq. 26); then
// probabilities p = (c - D(c)) / sum + gamma * p(suffix), down to the uniform
// 1/(|V| - 1) (|V| counts <unk> and not <s>); <s> has probability 1 (log 0);
// <unk> gets only the interpolated mass. lmplz computes in float32, and so
// does this code, operation for operation, so its numbers match lmplz's.
#include "ngram/estimate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "core_error.hpp"
#include "ngram/io_util.hpp"
#include "parallel.hpp"

namespace aigc::ngram {

namespace {

constexpr std::uint32_t kSentinel = 0xFFFFFFFFu;

template <class Fn>
void run_threads(unsigned threads, Fn&& fn) {
  if (threads <= 1) {
    fn(0u);
    return;
  }
  parallel_for(threads, threads, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) fn(static_cast<unsigned>(t));
  });
}

inline std::uint32_t get_u32(const float* p, std::size_t i) {
  std::uint32_t v;
  std::memcpy(&v, p + i, 4);
  return v;
}
inline void set_u32(float* p, std::size_t i, std::uint32_t v) { std::memcpy(p + i, &v, 4); }

std::size_t line_of_offset(std::string_view text, std::size_t offset) {
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

struct Chunk {
  std::vector<std::uint32_t> ids;  // "<s> ... </s>" per sentence
  Vocabulary vocab;                // local ids (for chunks > 0)
  std::uint64_t sentences = 0, words = 0;
};

void tokenize_chunk(std::string_view text, std::size_t begin, std::size_t end, TokenMode mode,
                    Chunk& out) {
  Vocabulary& vocab = out.vocab;
  vocab.insert(kUnkWord);
  vocab.insert(kBosWord);
  vocab.insert(kEosWord);
  out.ids.reserve((end - begin) / 5 + 16);
  std::size_t i = begin;
  std::vector<std::string_view> toks;
  std::vector<std::uint64_t> hashes;
  while (i < end) {
    std::size_t nl = text.find('\n', i);
    std::size_t le = (nl == std::string_view::npos || nl > end) ? end : nl;
    out.ids.push_back(kBos);
    toks.clear();
    for_each_token(text.substr(i, le - i), mode, i, [&](std::string_view tok) { toks.push_back(tok); });
    // Hash and prefetch the whole line first: the table lookups then overlap.
    hashes.resize(toks.size());
    for (std::size_t t = 0; t < toks.size(); ++t) {
      hashes[t] = hash_bytes(toks[t]);
      vocab.prefetch(hashes[t]);
    }
    for (std::size_t t = 0; t < toks.size(); ++t) {
      std::uint32_t id = vocab.insert_hashed(toks[t], hashes[t]);
      if (id == kBos || id == kEos) {
        std::size_t off = static_cast<std::size_t>(toks[t].data() - text.data());
        throw std::invalid_argument("line " + std::to_string(line_of_offset(text, off)) +
                                    " of the corpus contains the reserved word " +
                                    std::string(toks[t]) + " (lmplz rejects it too); remove it");
      }
      out.ids.push_back(id);
    }
    out.words += toks.size();
    out.ids.push_back(kEos);
    ++out.sentences;
    i = le + 1;
  }
}

template <int K>
struct Key {
  std::uint32_t w[K];
  bool operator<(const Key& o) const {
    for (int i = 0; i < K; ++i)
      if (w[i] != o.w[i]) return w[i] < o.w[i];
    return false;
  }
};

// The trie under construction: per level word, parent, terminal count.
struct Build {
  int order = 0;
  std::vector<std::vector<std::uint32_t>> word, parent, count;
};

template <int K>
void build_trie_k(const std::vector<Chunk>& chunks, std::size_t vocab_size, unsigned threads,
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
            b.parent[j + 1][idx] = static_cast<std::uint32_t>(last[j]);
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
  b.parent.assign(n, {});
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
    b.parent[j].resize(total);
    b.count[j].resize(total);
  }
  b.word[0].resize(v);
  for (std::size_t w = 0; w < v; ++w) b.word[0][w] = static_cast<std::uint32_t>(w);
  b.count[0].assign(v, 0);
  run_threads(threads, [&](unsigned t) { walk(t, true, &base[t]); });
}

void build_trie(const std::vector<Chunk>& chunks, std::size_t vocab_size, int order,
                unsigned threads, Build& b) {
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
      b.parent.assign(1, {});
      b.count.assign(1, std::vector<std::uint32_t>(vocab_size, 0));
      b.word[0].resize(vocab_size);
      for (std::size_t w = 0; w < vocab_size; ++w) b.word[0][w] = static_cast<std::uint32_t>(w);
      for (const Chunk& c : chunks)
        for (std::uint32_t id : c.ids) ++b.count[0][id];
    }
  }
}

struct Discount {
  float amount[4] = {0, 0, 0, 0};
  float get(std::uint32_t c) const { return amount[std::min<std::uint32_t>(c, 3)]; }
  float apply(std::uint32_t c) const { return static_cast<float>(c) - get(c); }
};

}  // namespace

namespace {
Model estimate_impl(std::string_view text, std::string* owned, const EstimateOptions& opt,
                    EstimateInfo* info);
}  // namespace

Model estimate(std::string_view text, const EstimateOptions& options, EstimateInfo* info) {
  return estimate_impl(text, nullptr, options, info);
}

Model estimate_file(const std::string& path, const EstimateOptions& options, EstimateInfo* info) {
  std::string text = read_file(path);
  return estimate_impl(text, &text, options, info);
}

namespace {
Model estimate_impl(std::string_view text, std::string* owned, const EstimateOptions& opt,
                    EstimateInfo* info) {
  check_order(opt.order);
  const int order = opt.order;
  if (opt.discount_fallback.size() > 3)
    throw std::invalid_argument("discount_fallback takes 1 to 3 discounts (for adjusted counts 1, 2, 3+), got " +
                                std::to_string(opt.discount_fallback.size()));
  Discount fallback;
  bool has_fallback = !opt.discount_fallback.empty();
  for (int j = 1; j <= 3 && has_fallback; ++j) {
    float d = opt.discount_fallback[std::min<std::size_t>(j - 1, opt.discount_fallback.size() - 1)];
    if (!(d >= 0.0f && d <= static_cast<float>(j)))
      throw std::invalid_argument("discount_fallback D" + std::to_string(j) + "=" + std::to_string(d) +
                                  " is out of range [0, " + std::to_string(j) + "]");
    fallback.amount[j] = d;
  }
  std::vector<std::uint64_t> prune;
  if (!opt.prune.empty()) {
    if (opt.prune.size() > static_cast<std::size_t>(order))
      throw std::invalid_argument("prune has " + std::to_string(opt.prune.size()) +
                                  " thresholds for an order-" + std::to_string(order) + " model");
    if (opt.prune[0] != 0)
      throw std::invalid_argument("pruning unigrams is not supported (as in lmplz): the first prune threshold must be 0, got " +
                                  std::to_string(opt.prune[0]));
    for (std::size_t i = 1; i < opt.prune.size(); ++i)
      if (opt.prune[i] < opt.prune[i - 1])
        throw std::invalid_argument("prune thresholds must be non-decreasing (as in lmplz)");
    prune = opt.prune;
    prune.resize(order, prune.back());
  }
  const bool pruning = !prune.empty() && std::any_of(prune.begin(), prune.end(), [](auto x) { return x > 0; });
  if (text.empty()) throw std::invalid_argument("the corpus is empty: it has no lines");
  unsigned threads = opt.threads == 0 ? default_thread_count() : opt.threads;
  threads = std::max(1u, std::min(threads, 64u));

  // 1. Tokenise in chunks of whole lines.
  unsigned nchunks = text.size() < (1u << 18) ? 1u : threads;
  std::vector<std::size_t> cut(nchunks + 1, text.size());
  cut[0] = 0;
  for (unsigned c = 1; c < nchunks; ++c) {
    std::size_t at = std::max(cut[c - 1], text.size() * c / nchunks);
    std::size_t nl = text.find('\n', at);
    cut[c] = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  std::vector<Chunk> chunks(nchunks);
  run_threads(nchunks, [&](unsigned c) { tokenize_chunk(text, cut[c], cut[c + 1], opt.mode, chunks[c]); });
  std::uint64_t sentences = 0, words = 0, positions = 0;
  for (const Chunk& c : chunks) {
    sentences += c.sentences;
    words += c.words;
    positions += c.ids.size();
  }
  if (words == 0) throw std::invalid_argument("the corpus is empty: it has no words");
  if (positions >= kSentinel) throw CoreError("the corpus is too large for this build (4G tokens)");
  // Merge vocabularies: chunk 0's ids stay, later chunks are remapped.
  Model model;
  model.set_mode(opt.mode);
  Vocabulary& vocab = model.mutable_vocab();
  vocab = std::move(chunks[0].vocab);
  for (unsigned c = 1; c < nchunks; ++c) {
    Vocabulary& local = chunks[c].vocab;
    std::vector<std::uint32_t> map(local.size());
    for (std::uint32_t i = 0; i < local.size(); ++i) map[i] = vocab.insert(local.word(i));
    for (std::uint32_t& id : chunks[c].ids) id = map[id];
    local = Vocabulary();
  }
  const std::size_t v = vocab.size();
  if (owned) {  // the text is no longer needed: give its memory back
    owned->clear();
    owned->shrink_to_fit();
  }

  // 2. Count.
  Build b;
  build_trie(chunks, v, order, threads, b);
  chunks.clear();
  chunks.shrink_to_fit();
  std::vector<Level>& levels = model.mutable_levels();
  levels.resize(order);
  for (int k = 0; k < order; ++k) {
    levels[k].word = std::move(b.word[k]);
    if (k + 1 < order) {
      std::vector<std::uint32_t>& child = levels[k].child;
      child.assign(levels[k].size() + 1, 0);
      for (std::uint32_t p : b.parent[k + 1]) ++child[p + 1];
      for (std::size_t i = 1; i < child.size(); ++i) child[i] += child[i - 1];
      std::vector<std::uint32_t>().swap(b.parent[k + 1]);
    }
  }
  // Counts live in the prob arrays (same size) until they become probabilities.
  for (int k = 0; k < order; ++k) {
    levels[k].prob.resize(levels[k].size());
    std::memcpy(levels[k].prob.data(), b.count[k].data(), levels[k].size() * 4);
    std::vector<std::uint32_t>().swap(b.count[k]);
  }
  // Raw counts: terminal + children.
  for (int k = order - 2; k >= 0; --k) {
    Level& lv = levels[k];
    float* cnt = lv.prob.data();
    const float* up = levels[k + 1].prob.data();
    parallel_for(lv.size(), threads, 4096, [&](std::size_t s, std::size_t e) {
      for (std::size_t i = s; i < e; ++i) {
        std::uint64_t sum = get_u32(cnt, i);
        for (std::uint32_t c = lv.child[i]; c < lv.child[i + 1]; ++c) sum += get_u32(up, c);
        set_u32(cnt, i, static_cast<std::uint32_t>(sum));
      }
    });
  }
  // Pruning marks from raw counts (orders >= 2).
  std::vector<std::vector<char>> pruned(order);
  if (pruning) {
    for (int k = 1; k < order; ++k) {
      if (prune[k] == 0) continue;
      pruned[k].resize(levels[k].size());
      const float* cnt = levels[k].prob.data();
      for (std::size_t i = 0; i < levels[k].size(); ++i) pruned[k][i] = get_u32(cnt, i) <= prune[k];
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
  std::vector<std::vector<std::uint32_t>> sfx(order);
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
    parallel_for(pl.size(), threads, 4096, [&](std::size_t s, std::size_t e) {
      for (std::size_t p = s; p < e; ++p) {
        std::uint32_t cb = pl.child[p], ce = pl.child[p + 1];
        if (cb == ce) continue;
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
    float* cnt = levels[k - 1].prob.data();
    std::vector<std::uint32_t> adj(levels[k - 1].size(), 0);
    for (std::uint32_t x : sfx[k]) ++adj[x];
    for (std::size_t i = 0; i < adj.size(); ++i)
      if (i < bos_begin[k - 1] || i >= bos_end[k - 1]) set_u32(cnt, i, adj[i]);
  }
  set_u32(levels[0].prob.data(), kUnk, 0);
  set_u32(levels[0].prob.data(), kBos, 0);

  // 3. Discounts from counts of counts.
  std::vector<Discount> discounts(order);
  std::vector<bool> used_fallback(order, false);
  for (int k = 0; k < order; ++k) {
    std::uint64_t nc[5] = {0, 0, 0, 0, 0};
    const float* cnt = levels[k].prob.data();
    for (std::size_t i = 0; i < levels[k].size(); ++i) {
      std::uint32_t c = get_u32(cnt, i);
      if (c < 5) ++nc[c];
    }
    std::string problem;
    for (int j = 1; j < 4 && problem.empty(); ++j)
      if (nc[j] == 0)
        problem = "could not calculate Kneser-Ney discounts for " + std::to_string(k + 1) +
                  "-grams with adjusted count " + std::to_string(j + 1) + " because no " +
                  std::to_string(k + 1) + "-grams with adjusted count " + std::to_string(j) +
                  " were observed; is this small or artificial data?";
    Discount d;
    if (problem.empty()) {
      float y = static_cast<float>(nc[1]) / static_cast<float>(nc[1] + 2.0 * nc[2]);
      for (int j = 1; j < 4; ++j) {
        d.amount[j] = static_cast<float>(j) - static_cast<float>(j + 1) * y *
                                                  static_cast<float>(nc[j + 1]) / static_cast<float>(nc[j]);
        if ((d.amount[j] < 0.0f || d.amount[j] > static_cast<float>(j)) && problem.empty())
          problem = std::to_string(k + 1) + "-gram discount out of range for adjusted count " +
                    std::to_string(j) + ": " + std::to_string(d.amount[j]);
      }
    }
    if (!problem.empty()) {
      if (!has_fallback)
        throw CoreError(problem + " (counts of counts n1..n4 = " + std::to_string(nc[1]) + ", " +
                        std::to_string(nc[2]) + ", " + std::to_string(nc[3]) + ", " +
                        std::to_string(nc[4]) +
                        "). Use more data, or pass discount_fallback=[0.5, 1.0, 1.5] (lmplz "
                        "--discount_fallback) to substitute fixed discounts");
      d = fallback;
      used_fallback[k] = true;
    }
    discounts[k] = d;
  }

  // 4. Probabilities, level by level (linear float, then log10 when the next
  // level no longer needs them).
  const float uniform = static_cast<float>(1.0 / static_cast<float>(v - 1));
  {
    Level& l0 = levels[0];
    float* cnt = l0.prob.data();
    std::uint64_t denom = 0, nn[4] = {0, 0, 0, 0};
    for (std::size_t w = 0; w < v; ++w) {
      std::uint32_t c = get_u32(cnt, w);
      denom += c;
      if (c > 0) ++nn[std::min<std::uint32_t>(c, 3)];
    }
    float fden = static_cast<float>(denom);
    float gamma = 0.0f;
    for (int i = 1; i <= 3; ++i) gamma += discounts[0].amount[i] * static_cast<float>(nn[i]);
    gamma /= fden;
    for (std::size_t w = 0; w < v; ++w) {
      float p;
      if (w == kBos) {
        p = 1.0f;
      } else if (w == kUnk) {
        p = 0.0f + gamma * uniform;
      } else {
        float un = discounts[0].apply(get_u32(cnt, w)) / fden;
        p = un + gamma * uniform;
      }
      cnt[w] = p;
    }
  }
  for (int k = 1; k < order; ++k) {
    const std::vector<std::uint32_t>& sx = sfx[k];
    Level& pl = levels[k - 1];
    Level& lv = levels[k];
    pl.backoff.assign(pl.size(), 1.0f);
    const Discount& d = discounts[k];
    float* cur = lv.prob.data();
    const std::vector<char>* pr = pruned[k].empty() ? nullptr : &pruned[k];
    // The suffixes of level-k nodes are level-(k-1) nodes, still linear.
    const float* lower_sfx = pl.prob.data();
    parallel_for(pl.size(), threads, 2048, [&](std::size_t s, std::size_t e) {
      for (std::size_t p = s; p < e; ++p) {
        std::uint32_t cb = pl.child[p], ce = pl.child[p + 1];
        if (cb == ce) continue;
        std::uint64_t denom = 0, normalizer = 0, nn[4] = {0, 0, 0, 0};
        for (std::uint32_t c = cb; c < ce; ++c) {
          std::uint32_t cnt = get_u32(cur, c);
          denom += cnt;
          if (pr && (*pr)[c]) {
            normalizer += cnt;
          } else if (cnt > 0) {
            ++nn[std::min<std::uint32_t>(cnt, 3)];
          }
        }
        float fden = static_cast<float>(denom);
        float gamma = 0.0f;
        for (int i = 1; i <= 3; ++i) gamma += d.amount[i] * static_cast<float>(nn[i]);
        gamma += static_cast<float>(normalizer);
        gamma /= fden;
        if (pl.word[p] != kUnk && pl.word[p] != kEos) pl.backoff[p] = gamma;
        for (std::uint32_t c = cb; c < ce; ++c) {
          std::uint32_t cnt = get_u32(cur, c);
          float un = d.apply(cnt) / fden;
          cur[c] = un + gamma * lower_sfx[sx[c]];
        }
      }
    });
    std::vector<std::uint32_t>().swap(sfx[k]);
    // Level k-1 is now final: to log10.
    for (std::size_t i = 0; i < pl.size(); ++i) {
      pl.prob[i] = std::min(0.0f, log10f(pl.prob[i]));
      pl.backoff[i] = log10f(pl.backoff[i]);
    }
  }
  // The suffix of a level-k node is in level k-1, whose probabilities were
  // converted to log10 above only after level k was computed.
  {
    Level& top = levels[order - 1];
    for (std::size_t i = 0; i < top.size(); ++i) top.prob[i] = std::min(0.0f, log10f(top.prob[i]));
  }

  // 5. Remove pruned n-grams.
  if (pruning) {
    for (int k = 1; k < order; ++k) {
      if (pruned[k].empty()) continue;
      Level& pl = levels[k - 1];
      Level& lv = levels[k];
      std::vector<std::uint32_t> newidx(lv.size() + 1);
      std::uint32_t kept = 0;
      for (std::size_t i = 0; i < lv.size(); ++i) {
        newidx[i] = kept;
        if (!pruned[k][i]) {
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
  if (info) {
    info->discounts.clear();
    for (const Discount& d : discounts) info->discounts.push_back({d.amount[0], d.amount[1], d.amount[2], d.amount[3]});
    info->fallback_used = used_fallback;
    info->sentences = sentences;
    info->tokens = words;
  }
  return model;
}
}  // namespace

}  // namespace aigc::ngram
