#pragma once
// The text of an ARPA file, written once for both writers (Model::write_arpa
// and the bounded estimator's ArpaSink), so their bytes cannot drift apart.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ngram/text.hpp"
#include "ngram/vocab.hpp"

namespace aigc::ngram {

// The line that tells a char model's ARPA file from a word model's.
inline constexpr std::string_view kArpaModeHeader = "# aigc-engine n-gram model: tokenizer=";
// The header up to the first section: the mode line (char models only; KenLM's
// and SRILM's readers skip it), then \data\ and the count of each order.
std::string arpa_header(TokenMode mode, const std::vector<std::uint64_t>& counts);
// "\n\\N-grams:\n", the start of order N's section.
std::string arpa_section(int n);
// The footer after the last section.
inline constexpr const char* kArpaFooter = "\n\\end\\\n";

// Formats n-gram lines, "prob\tw1 ... wn[\tbackoff]\n" (floats as format_float;
// backoff below the highest order only). One per thread: it caches the text of
// recent floats (backoffs repeat a lot).
class ArpaLines {
 public:
  ArpaLines(const Vocabulary& vocab, int order);
  // The most lines append_block takes at once.
  static constexpr std::size_t kBlock = 64;
  // Appends the lines of m <= kBlock n-grams of order n: ids[j][0..n-1],
  // prob[j] and, below the highest order, backoff[j]. Their words, scattered
  // over the vocabulary, are prefetched in two steps (offsets, then bytes)
  // before the lines are formatted.
  void append_block(std::string& out, int n, std::size_t m, const std::uint32_t* const* ids,
                    const float* prob, const float* backoff);

 private:
  struct Cached {
    std::uint32_t bits;
    std::uint8_t len;
    char text[19];
  };
  char* put_float(char* p, float value);
  void append(std::string& out, int n, const std::uint32_t* ids, float prob, float backoff);
  const Vocabulary& vocab_;
  int order_;
  const char* arena_end_;
  std::vector<char> line_;  // room for the longest line
  std::vector<Cached> cache_;
};

}  // namespace aigc::ngram
