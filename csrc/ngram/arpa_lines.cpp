#include "ngram/arpa_lines.hpp"

#include <algorithm>
#include <cstring>

#include "ngram/io_util.hpp"

namespace aigc::ngram {

namespace {
constexpr std::size_t kCacheBits = 12;
constexpr std::size_t kFloatRoom = 24;  // format_float writes at most 15 characters
}  // namespace

std::string arpa_header(TokenMode mode, const std::vector<std::uint64_t>& counts) {
  std::string head = mode == TokenMode::kChar ? std::string(kArpaModeHeader) + "char\n\n" : "";
  head += "\\data\\\n";
  for (std::size_t n = 1; n <= counts.size(); ++n)
    head += "ngram " + std::to_string(n) + "=" + std::to_string(counts[n - 1]) + "\n";
  return head;
}

std::string arpa_section(int n) { return "\n\\" + std::to_string(n) + "-grams:\n"; }

ArpaLines::ArpaLines(const Vocabulary& vocab, int order)
    : vocab_(vocab), order_(order), cache_(std::size_t{1} << kCacheBits) {
  std::size_t longest = 0;
  for (std::uint32_t id = 0; id < vocab.size(); ++id)
    longest = std::max(longest, vocab.word(id).size());
  line_.resize(2 * kFloatRoom + static_cast<std::size_t>(order) * (longest + 1) + 20);
  arena_end_ = vocab.arena().data() + vocab.arena().size();
  for (Cached& c : cache_) c.bits = 0xFFFFFFFFu;  // a NaN: never written
}

char* ArpaLines::put_float(char* p, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  Cached& c = cache_[(bits * 0x9E3779B1u) >> (32 - kCacheBits)];
  if (c.bits != bits) {
    c.bits = bits;
    c.len = static_cast<std::uint8_t>(format_float(value, c.text));
  }
  std::memcpy(p, c.text, sizeof c.text);  // fixed size: one move, the tail overwritten
  return p + c.len;
}

void ArpaLines::append_block(std::string& out, int n, std::size_t m,
                             const std::uint32_t* const* ids, const float* prob,
                             const float* backoff) {
  for (int step = 1; step <= 2; ++step)
    for (std::size_t j = 0; j < m; ++j)
      for (int k = 0; k < n; ++k) vocab_.prefetch_word(ids[j][k], step);
  for (std::size_t j = 0; j < m; ++j)
    append(out, n, ids[j], prob[j], n < order_ ? backoff[j] : 0.0f);
}

void ArpaLines::append(std::string& out, int n, const std::uint32_t* ids, float prob,
                       float backoff) {
  char* const start = line_.data();
  char* p = put_float(start, prob);
  *p++ = '\t';
  for (int k = 0; k < n; ++k) {
    if (k) *p++ = ' ';
    const std::string_view w = vocab_.word(ids[k]);
    if (w.size() <= 16 && w.data() + 16 <= arena_end_) {
      std::memcpy(p, w.data(), 16);  // fixed size: one move, the tail overwritten
    } else {
      std::memcpy(p, w.data(), w.size());
    }
    p += w.size();
  }
  if (n < order_) {
    *p++ = '\t';
    p = put_float(p, backoff);
  }
  *p++ = '\n';
  out.append(start, static_cast<std::size_t>(p - start));
}

}  // namespace aigc::ngram
