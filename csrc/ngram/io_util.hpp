#pragma once
// Small file helpers shared by the n-gram readers and writers.
#include <cstdio>
#include <string>
#include <string_view>

namespace aigc::ngram {

// Reads a whole file; CoreError naming the path when it cannot be read.
std::string read_file(const std::string& path);

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

 private:
  void flush();
  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
};

// Shortest text that reads back to the same float ("0" for +-0).
std::size_t format_float(float value, char* out);
// Excerpt of a line for error messages.
std::string excerpt(std::string_view line);

}  // namespace aigc::ngram
