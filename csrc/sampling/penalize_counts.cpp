// Penalties over counts the caller keeps (see sampling.hpp).
#include <string>
#include <stdexcept>

#include "sampling/row_common.hpp"
#include "sampling/sampling.hpp"

namespace aigc::sampling {

void penalize_counts(float* row, std::int64_t n, const std::int32_t* ids, std::int64_t len,
                     const std::int32_t* counts, float repetition, float presence,
                     float frequency) {
  if (!is_finite(repetition) || repetition <= 0.0f)
    throw std::invalid_argument("repetition_penalty must be finite and > 0, got " +
                                std::to_string(repetition));
  if (!is_finite(presence) || !is_finite(frequency))
    throw std::invalid_argument("presence_penalty and frequency_penalty must be finite");
  for (std::int64_t j = 0; j < len; ++j) {
    const std::int32_t t = ids[j];
    if (t < 0 || t >= n)
      throw std::invalid_argument("token id " + std::to_string(t) + " is outside a row of " +
                                  std::to_string(n));
    row[t] = penalised_logit(row[t], counts[t], repetition, presence, frequency);
  }
}

}  // namespace aigc::sampling
