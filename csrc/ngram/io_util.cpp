#include "ngram/io_util.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core_error.hpp"
#include "ngram/text.hpp"

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
  if (sum_) sum_->update(data, n);
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
  std::string out;
  std::size_t i = 0;
  while (i < line.size()) {
    if (out.size() >= 77) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(line[i]);
    const std::size_t len = utf8_sequence_length(line, i);
    if (len == 0 || (c < 0x20 && c != '\t') || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned>(c));
      out += hex;
      ++i;
      continue;
    }
    out.append(line.substr(i, len));
    i += len;
  }
  return out;
}

std::size_t find_invalid_utf8(std::string_view s) {
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t v;
      std::memcpy(&v, s.data() + i, 8);
      if (!(v & 0x8080808080808080ull)) {
        i += 8;
        continue;
      }
    }
    const std::size_t len = utf8_sequence_length(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

namespace {
constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                        kP3 = 0x165667B19E3779F9ull, kP4 = 0x85EBCA77C2B2AE63ull,
                        kP5 = 0x27D4EB2F165667C5ull;
inline std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline std::uint64_t round64(std::uint64_t acc, std::uint64_t v) {
  return rotl(acc + v * kP2, 31) * kP1;
}
inline std::uint64_t load64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace

void Checksum::block(const unsigned char* p) {
  lane_[0] = round64(lane_[0], load64(p));
  lane_[1] = round64(lane_[1], load64(p + 8));
  lane_[2] = round64(lane_[2], load64(p + 16));
  lane_[3] = round64(lane_[3], load64(p + 24));
}

void Checksum::update(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += n;
  if (tail_n_) {
    const std::size_t take = std::min(n, sizeof tail_ - tail_n_);
    std::memcpy(tail_ + tail_n_, p, take);
    tail_n_ += take;
    p += take;
    n -= take;
    if (tail_n_ < sizeof tail_) return;
    block(tail_);
    tail_n_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) block(p);
  if (n) {
    std::memcpy(tail_, p, n);
    tail_n_ = n;
  }
}

std::uint64_t Checksum::digest() const {
  std::uint64_t h = rotl(lane_[0], 1) + rotl(lane_[1], 7) + rotl(lane_[2], 12) + rotl(lane_[3], 18);
  for (std::uint64_t v : lane_) h = (h ^ round64(0, v)) * kP1 + kP4;
  h += total_;
  std::size_t i = 0;
  for (; i + 8 <= tail_n_; i += 8) h = rotl(h ^ round64(0, load64(tail_ + i)), 27) * kP1 + kP4;
  for (; i < tail_n_; ++i) h = rotl(h ^ (tail_[i] * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace aigc::ngram
