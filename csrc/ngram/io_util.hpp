#pragma once
// Small file helpers shared by the n-gram readers and writers.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace aigc::ngram {

// Reads a whole file; CoreError naming the path when it cannot be read.
std::string read_file(const std::string& path);

class Checksum;

// Buffered writer over a FILE*; CoreError naming the path on failure.
class FileWriter {
 public:
  explicit FileWriter(const std::string& path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void write(const void* data, std::size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void close();
  // When set, every byte written is also fed to `sum`.
  void set_checksum(Checksum* sum) { sum_ = sum; }

 private:
  void flush();
  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  Checksum* sum_ = nullptr;
};

// Shortest text that reads back to the same float ("0" for +-0).
std::size_t format_float(float value, char* out);
// Excerpt of a line for error messages: at most about 80 characters, always
// valid UTF-8 (invalid bytes and control characters other than tab are shown
// as \xNN), so a message about a damaged file can itself be shown.
std::string excerpt(std::string_view line);

// Offset of the first byte of `s` that is not part of valid UTF-8, or npos.
std::size_t find_invalid_utf8(std::string_view s);

// The UTF-8 byte-order mark; readers skip it at the start of a file.
inline constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
inline std::string_view strip_bom(std::string_view s) {
  return s.substr(0, 3) == kUtf8Bom ? s.substr(3) : s;
}

// A fast non-cryptographic 64-bit checksum of a byte stream (xxHash64's
// rounds over 32-byte blocks), for detecting damaged files. Feeding the same
// bytes in any split gives the same digest.
class Checksum {
 public:
  void update(const void* data, std::size_t n);
  std::uint64_t digest() const;

 private:
  void block(const unsigned char* p);
  std::uint64_t lane_[4] = {0x60EA27EEADC0B5D6ull, 0xC2B2AE3D27D4EB4Full, 0ull,
                            0x61C8864E7A143579ull};
  unsigned char tail_[32] = {};
  std::size_t tail_n_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace aigc::ngram
