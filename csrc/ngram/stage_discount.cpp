// Stage 4: discounts from the counts of counts of each order (Chen & Goodman
// eq. 26, as lmplz), with the optional fallback; and the unigram
// probabilities, which need nothing but the unigram adjusted counts. Shared
// by the in-memory and bounded paths.
#include "core_error.hpp"
#include "ngram/estimate_stages.hpp"

namespace aigc::ngram::stages {

void compute_discounts(const Plan& plan, const std::vector<CountsOfCounts>& counts,
                       std::vector<Discount>& discounts, std::vector<bool>& used_fallback) {
  const int order = plan.order;
  discounts.assign(order, Discount());
  used_fallback.assign(order, false);
  for (int k = 0; k < order; ++k) {
    const std::uint64_t* nc = counts[k].n;
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
      if (!plan.has_fallback)
        throw CoreError(problem + " (counts of counts n1..n4 = " + std::to_string(nc[1]) + ", " +
                        std::to_string(nc[2]) + ", " + std::to_string(nc[3]) + ", " +
                        std::to_string(nc[4]) +
                        "). Use more data, or pass discount_fallback=[0.5, 1.0, 1.5] (lmplz "
                        "--discount_fallback) to substitute fixed discounts");
      d = plan.fallback;
      used_fallback[k] = true;
    }
    discounts[k] = d;
  }
}

std::vector<float> unigram_probs(const std::vector<std::uint32_t>& adjusted, const Discount& d) {
  const std::size_t v = adjusted.size();
  const float uniform = static_cast<float>(1.0 / static_cast<float>(v - 1));
  ContextStats s;
  for (std::size_t w = 0; w < v; ++w) s.add(adjusted[w], false);
  const float gamma = kn_gamma(d, s);
  std::vector<float> p(v);
  for (std::size_t w = 0; w < v; ++w) {
    if (w == kBos)
      p[w] = 1.0f;
    else if (w == kUnk)
      p[w] = 0.0f + gamma * uniform;
    else
      p[w] = kn_prob(d, adjusted[w], s, gamma, uniform);
  }
  return p;
}

}  // namespace aigc::ngram::stages
