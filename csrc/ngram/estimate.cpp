// Estimation entry points: options, the choice of path, the in-memory
// pipeline's driver. The stages are in stage_*.cpp (in memory) and
// external_*.cpp (bounded memory).
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

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <optional>

#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"
#include "ngram/io_util.hpp"

namespace aigc::ngram {

void EstimateProgress::check() const {
  if (cancelled_.load(std::memory_order_relaxed)) throw EstimateCancelled();
}

std::uint64_t parse_memory_size(std::string_view text) {
  const std::string s(text);
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("cannot read memory size '" + s + "' " + why +
                                 " (examples: 100M, 2G, 25%; as lmplz -S, no suffix means K)");
  };
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) throw bad("(no leading number)");
  double value;
  try {
    std::size_t used = 0;
    value = std::stod(s.substr(0, i), &used);
    if (used != i) throw bad("(bad number)");
  } catch (const std::logic_error&) {
    throw bad("(bad number)");
  }
  std::string suffix = s.substr(i);
  if (suffix.size() > 1) throw bad("(the suffix is one of b K M G T %)");
  if (suffix.empty()) suffix = "K";
  if (suffix == "%") {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) throw bad("(the physical memory size is unknown)");
    if (value > 100) throw bad("(more than 100%)");
    return static_cast<std::uint64_t>(value * static_cast<double>(pages) *
                                      static_cast<double>(page) / 100.0);
  }
  static const std::string units = "bKMGT";
  char u = suffix[0] == 'k' ? 'K' : suffix[0];
  if (u == 'B') u = 'b';
  if (u == 'm') u = 'M';
  if (u == 'g') u = 'G';
  if (u == 't') u = 'T';
  std::size_t idx = units.find(u);
  if (idx == std::string::npos) throw bad("(the suffix is one of b K M G T %)");
  for (std::size_t k = 0; k < idx; ++k) value *= 1024;
  if (!(value >= 0) || value > 1.8e19) throw bad("(too large)");
  return static_cast<std::uint64_t>(value);
}

namespace stages {

Plan make_plan(const EstimateOptions& opt) {
  check_order(opt.order);
  Plan plan;
  plan.order = opt.order;
  plan.mode = opt.mode;
  plan.progress = opt.progress;
  const int order = opt.order;
  if (opt.discount_fallback.size() > 3)
    throw std::invalid_argument(
        "discount_fallback takes 1 to 3 discounts (for adjusted counts 1, 2, 3+), got " +
        std::to_string(opt.discount_fallback.size()));
  plan.has_fallback = !opt.discount_fallback.empty();
  for (int j = 1; j <= 3 && plan.has_fallback; ++j) {
    float d = opt.discount_fallback[std::min<std::size_t>(j - 1, opt.discount_fallback.size() - 1)];
    if (!(d >= 0.0f && d <= static_cast<float>(j)))
      throw std::invalid_argument("discount_fallback D" + std::to_string(j) + "=" +
                                  std::to_string(d) + " is out of range [0, " +
                                  std::to_string(j) + "]");
    plan.fallback.amount[j] = d;
  }
  if (!opt.prune.empty()) {
    if (opt.prune.size() > static_cast<std::size_t>(order))
      throw std::invalid_argument("prune has " + std::to_string(opt.prune.size()) +
                                  " thresholds for an order-" + std::to_string(order) + " model");
    if (opt.prune[0] != 0)
      throw std::invalid_argument(
          "pruning unigrams is not supported (as in lmplz): the first prune threshold must be 0, "
          "got " +
          std::to_string(opt.prune[0]));
    for (std::size_t i = 1; i < opt.prune.size(); ++i)
      if (opt.prune[i] < opt.prune[i - 1])
        throw std::invalid_argument("prune thresholds must be non-decreasing (as in lmplz)");
    plan.prune = opt.prune;
    plan.prune.resize(order, plan.prune.back());
  }
  plan.pruning = std::any_of(plan.prune.begin(), plan.prune.end(), [](auto x) { return x > 0; });
  unsigned threads = opt.threads == 0 ? default_thread_count() : opt.threads;
  plan.threads = std::max(1u, std::min(threads, 64u));
  return plan;
}

namespace {
void fill_info(EstimateInfo* info, const std::vector<Discount>& discounts,
               const std::vector<bool>& used_fallback) {
  if (!info) return;
  info->discounts.clear();
  for (const Discount& d : discounts)
    info->discounts.push_back({d.amount[0], d.amount[1], d.amount[2], d.amount[3]});
  info->fallback_used = used_fallback;
}
}  // namespace

Model estimate_in_memory(std::string_view text, std::string* owned, const Plan& plan,
                         EstimateInfo* info) {
  if (text.empty()) throw std::invalid_argument("the corpus is empty: it has no lines");
  Model model;
  model.set_mode(plan.mode);
  std::uint64_t sentences = 0, words = 0;
  plan.begin("reading corpus", text.size());
  std::vector<Chunk> chunks = read_corpus(text, plan, model.mutable_vocab(), sentences, words);
  if (owned) {  // the text is no longer needed: give its memory back
    owned->clear();
    owned->shrink_to_fit();
  }
  plan.begin("counting");
  Build b;
  build_trie(chunks, model.vocab().size(), plan, b);
  chunks.clear();
  chunks.shrink_to_fit();
  plan.begin("adjusting counts");
  std::vector<Level>& levels = model.mutable_levels();
  Counts counts;
  adjust_counts(levels, b, plan, counts);
  std::vector<CountsOfCounts> cc(plan.order);
  for (int k = 0; k < plan.order; ++k)
    for (std::uint32_t c : counts.adjusted[k]) cc[k].add(c);
  std::vector<Discount> discounts;
  std::vector<bool> used_fallback;
  compute_discounts(plan, cc, discounts, used_fallback);
  plan.begin("estimating probabilities", static_cast<std::uint64_t>(plan.order));
  interpolate(levels, counts, discounts, plan);
  model.set_suffix_closed(true);  // by construction (pruning keeps suffixes)
  fill_info(info, discounts, used_fallback);
  if (info) {
    info->sentences = sentences;
    info->tokens = words;
  }
  return model;
}

}  // namespace stages

namespace {

Model run_bounded_to_model(std::string_view corpus, bool is_path, const stages::Plan& plan,
                           const EstimateOptions& opt, EstimateInfo* info) {
  Model model;
  model.set_mode(plan.mode);
  stages::TrieSink sink(model);
  std::vector<stages::Discount> discounts;
  std::vector<bool> used_fallback;
  stages::estimate_bounded(corpus, is_path, plan, opt, model.mutable_vocab(), sink, discounts,
                           used_fallback, info);
  stages::fill_info(info, discounts, used_fallback);
  model.set_suffix_closed(true);
  return model;
}

}  // namespace

Model estimate(std::string_view text, const EstimateOptions& options, EstimateInfo* info) {
  stages::Plan plan = stages::make_plan(options);
  if (options.memory > 0) return run_bounded_to_model(text, false, plan, options, info);
  return stages::estimate_in_memory(text, nullptr, plan, info);
}

Model estimate_file(const std::string& path, const EstimateOptions& options, EstimateInfo* info) {
  stages::Plan plan = stages::make_plan(options);
  if (options.memory > 0) return run_bounded_to_model(path, true, plan, options, info);
  std::string text = read_file(path);
  return stages::estimate_in_memory(text, &text, plan, info);
}

void estimate_to_arpa(std::string_view corpus, bool is_path, const std::string& arpa_path,
                      const EstimateOptions& options, EstimateInfo* info) {
  stages::Plan plan = stages::make_plan(options);
  if (options.memory == 0) {
    std::optional<Model> model;
    if (is_path) {
      std::string text = read_file(std::string(corpus));
      model.emplace(stages::estimate_in_memory(text, &text, plan, info));
    } else {
      model.emplace(stages::estimate_in_memory(corpus, nullptr, plan, info));
    }
    const std::vector<std::uint64_t> counts = model->counts();
    plan.begin("writing ARPA", std::accumulate(counts.begin(), counts.end(), std::uint64_t{0}));
    model->write_arpa(arpa_path, plan.threads, [&](std::uint64_t n) { plan.advance(n); });
    return;
  }
  Vocabulary vocab;
  std::vector<stages::Discount> discounts;
  std::vector<bool> used_fallback;
  const std::size_t chunk = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(options.memory / 64, 1 << 16, 4 << 20));
  stages::ArpaSink sink(arpa_path, plan.mode, chunk, plan.threads > 1);
  stages::estimate_bounded(corpus, is_path, plan, options, vocab, sink, discounts, used_fallback,
                           info);
  stages::fill_info(info, discounts, used_fallback);
}

}  // namespace aigc::ngram
