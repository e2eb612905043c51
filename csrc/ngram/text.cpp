#include "ngram/text.hpp"

#include <cstdio>

namespace aigc::ngram {

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  unsigned char c = p[i];
  if (c < 0x80) return 1;
  std::size_t len;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > n) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    unsigned char d = p[i + k];
    if ((d & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

void throw_invalid_utf8(std::size_t offset, unsigned char byte) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", offset,
                static_cast<unsigned>(byte));
  throw std::invalid_argument(buf);
}

std::vector<std::string> tokenize(std::string_view line, TokenMode mode) {
  std::vector<std::string> out;
  for_each_token(line, mode, 0, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

bool fits_mode(std::string_view word, TokenMode mode) {
  if (word.empty()) return false;
  for (char c : word)
    if (is_separator(c)) return false;
  if (mode == TokenMode::kChar && word != "<unk>" && word != "<s>" && word != "</s>")
    return utf8_sequence_length(word, 0) == word.size();
  return true;
}

TokenMode parse_token_mode(std::string_view name) {
  if (name == "word") return TokenMode::kWord;
  if (name == "char") return TokenMode::kChar;
  throw std::invalid_argument("unknown tokenisation mode '" + std::string(name) +
                              "'; expected 'word' or 'char'");
}

const char* token_mode_name(TokenMode mode) { return mode == TokenMode::kChar ? "char" : "word"; }

}  // namespace aigc::ngram
