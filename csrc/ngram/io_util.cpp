#include "ngram/io_util.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>

#include "core_error.hpp"

namespace aigc::ngram {

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw CoreError("cannot open '" + path + "': " + std::strerror(errno));
  std::string data;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    long size = std::ftell(f);
    if (size > 0) data.reserve(static_cast<std::size_t>(size));
    std::fseek(f, 0, SEEK_SET);
  }
  char buf[1 << 16];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, got);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw CoreError("error while reading '" + path + "'");
  return data;
}

FileWriter::FileWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw CoreError("cannot open '" + path + "' for writing: " + std::strerror(errno));
  buffer_.reserve(1 << 20);
}

FileWriter::~FileWriter() {
  if (file_) std::fclose(file_);
}

void FileWriter::flush() {
  if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
    throw CoreError("error while writing '" + path_ + "': " + std::strerror(errno));
  buffer_.clear();
}

void FileWriter::write(const void* data, std::size_t n) {
  if (buffer_.size() + n > (1u << 20)) flush();
  if (n > (1u << 20)) {
    if (std::fwrite(data, 1, n, file_) != n)
      throw CoreError("error while writing '" + path_ + "': " + std::strerror(errno));
    return;
  }
  buffer_.append(static_cast<const char*>(data), n);
}

void FileWriter::close() {
  flush();
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) throw CoreError("error while closing '" + path_ + "'");
}

std::size_t format_float(float value, char* out) {
  if (value == 0.0f) {
    out[0] = '0';
    return 1;
  }
  auto r = std::to_chars(out, out + 32, value);
  return static_cast<std::size_t>(r.ptr - out);
}

std::string excerpt(std::string_view line) {
  if (line.size() > 80) return std::string(line.substr(0, 77)) + "...";
  return std::string(line);
}

}  // namespace aigc::ngram
