// The bounded-memory estimator's driver: a private spill directory, then
// the stages of external.hpp in turn. The directory and every spill file
// are removed when this returns or throws.
#include "ngram/external.hpp"

namespace aigc::ngram::stages {

namespace {

template <int N>
void run(External& ex, std::string_view corpus, bool is_path, const Plan& plan,
         std::vector<Discount>& discounts, std::vector<bool>& used_fallback, GramSink& sink) {
  count_windows<N>(ex, corpus, is_path);
  adjust_counts_external<N>(ex);
  compute_discounts(plan, ex.counts_of_counts, discounts, used_fallback);
  interpolate_external(ex, discounts, sink);
}

}  // namespace

void estimate_bounded(std::string_view corpus, bool is_path, const Plan& plan,
                      const EstimateOptions& opt, Vocabulary& vocab, GramSink& sink,
                      std::vector<Discount>& discounts, std::vector<bool>& used_fallback,
                      EstimateInfo* info) {
  SpillDir dir(opt.temp_dir);
  External ex(plan, dir, vocab, opt.memory);
  with_order(plan.order, [&](auto kc) {
    run<decltype(kc)::value>(ex, corpus, is_path, plan, discounts, used_fallback, sink);
  });
  if (info) {
    info->sentences = ex.sentences;
    info->tokens = ex.words;
    info->spill_runs = dir.runs;
    info->spill_bytes = dir.bytes_written;
    info->spilled_orders = ex.spilled_orders;
  }
  // External's sorters go before the directory (they remove their runs).
  ex.grams.clear();
  ex.window_sorter.reset();
}

}  // namespace aigc::ngram::stages
