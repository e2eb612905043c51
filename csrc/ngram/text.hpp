#pragma once
// Tokenisation as KenLM's lmplz does it, plus a character mode.
//
// Word mode: a line is one sentence; tokens are separated by runs of space,
// tab, CR, LF or NUL (lmplz's separators).
// Char mode: every Unicode character (UTF-8 decoded and validated) is a token;
// a run of whitespace (the word-mode separators and U+3000 ideographic space)
// between two characters becomes one token kSpaceToken ("\u2581", as in
// SentencePiece), whitespace at the start or end of a line is dropped. This
// keeps word boundaries of mixed text and keeps ARPA files (whose fields are
// space separated) valid. Invalid UTF-8 is a std::invalid_argument naming the
// byte offset.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace aigc::ngram {

enum class TokenMode : std::uint32_t { kWord = 0, kChar = 1 };

inline constexpr std::string_view kSpaceToken = "\xE2\x96\x81";  // U+2581

inline bool is_separator(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

// Length of the UTF-8 sequence at s[i] (1..4), or 0 if it is invalid there.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

[[noreturn]] void throw_invalid_utf8(std::size_t offset, unsigned char byte);

// Calls fn(std::string_view token) for each token of `line`. `base_offset` is
// the offset of line[0] in the whole input, for error messages.
template <class Fn>
void for_each_token(std::string_view line, TokenMode mode, std::size_t base_offset, Fn&& fn) {
  const std::size_t n = line.size();
  std::size_t i = 0;
  if (mode == TokenMode::kWord) {
    while (i < n) {
      while (i < n && is_separator(line[i])) ++i;
      std::size_t b = i;
      while (i < n && !is_separator(line[i])) ++i;
      if (i > b) fn(line.substr(b, i - b));
    }
    return;
  }
  bool pending_space = false, any = false;
  while (i < n) {
    if (is_separator(line[i])) {
      pending_space = any;
      ++i;
      continue;
    }
    std::size_t len = utf8_sequence_length(line, i);
    if (len == 0) throw_invalid_utf8(base_offset + i, static_cast<unsigned char>(line[i]));
    if (len == 3 && line.compare(i, 3, "\xE3\x80\x80") == 0) {  // U+3000
      pending_space = any;
      i += 3;
      continue;
    }
    if (pending_space) fn(kSpaceToken);
    pending_space = false;
    any = true;
    fn(line.substr(i, len));
    i += len;
  }
}

std::vector<std::string> tokenize(std::string_view line, TokenMode mode);

// Whether `word` (valid UTF-8) can be a token of a model in `mode`: non-empty,
// without a separator; in char mode one character, or <unk>, <s>, </s>.
// Both model file readers refuse other words, so every word of a loaded
// model is one its tokenizer can produce.
bool fits_mode(std::string_view word, TokenMode mode);

TokenMode parse_token_mode(std::string_view name);
const char* token_mode_name(TokenMode mode);

}  // namespace aigc::ngram
