// Spill files of the bounded estimator.
#include "ngram/spill.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core_error.hpp"

namespace aigc::ngram::stages {

namespace {
std::string mb(std::uint64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MB";
}
}  // namespace

SpillDir::SpillDir(const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* env = std::getenv("TMPDIR");
    base = env && *env ? env : "/tmp";
  }
  struct stat st;
  if (::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::invalid_argument("temp_dir '" + base + "' is not a directory");
  std::string tmpl = base + "/aigc-estimate-XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data()))
    throw CoreError("cannot make a spill directory in '" + base + "': " + std::strerror(errno));
  path_ = name.data();
}

SpillDir::~SpillDir() {
  for (const std::string& f : files_) ::unlink(f.c_str());
  ::rmdir(path_.c_str());
}

std::string SpillDir::new_file(const std::string& stem) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string p = path_ + "/" + stem + "." + std::to_string(serial_++);
  files_.push_back(p);
  return p;
}

void SpillDir::remove_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  ::unlink(path.c_str());
  files_.erase(std::remove(files_.begin(), files_.end(), path), files_.end());
}

SpillWriter::SpillWriter(SpillDir& dir, std::string path, std::size_t buffer_bytes)
    : dir_(dir), path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) throw CoreError("cannot create spill file '" + path_ + "': " + std::strerror(errno));
  buf_.resize(std::max<std::size_t>(buffer_bytes, 4096));
}

SpillWriter::~SpillWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SpillWriter::flush() {
  write_direct(buf_.data(), used_);
  used_ = 0;
}

void SpillWriter::write_direct(const char* data, std::size_t size) {
  std::size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(fd_, data + off, std::min<std::size_t>(size - off, 1 << 26));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      std::string why = std::strerror(err);
      if (err == ENOSPC || err == EDQUOT || err == EFBIG)
        throw CoreError("the temporary disk is full: writing spill file '" + path_ + "' failed (" +
                        why + ") after " + mb(dir_.bytes_written.load()) +
                        " of spill files; pass temp_dir= a directory with more free space "
                        "(about the corpus size times 10 to 20 for order 5)");
      throw CoreError("cannot write spill file '" + path_ + "': " + why);
    }
    off += static_cast<std::size_t>(n);
    dir_.bytes_written += static_cast<std::uint64_t>(n);
  }
}

void SpillWriter::write(const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  if (n >= buf_.size()) {  // a whole block: written from where it is, without a copy
    flush();
    write_direct(p, n);
    return;
  }
  while (n > 0) {
    if (used_ == buf_.size()) flush();
    std::size_t take = std::min(n, buf_.size() - used_);
    std::memcpy(buf_.data() + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
  }
}

void SpillWriter::close() {
  flush();
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw CoreError("cannot write spill file '" + path_ + "': " + std::strerror(errno));
  }
  fd_ = -1;
}

SpillReader::SpillReader(std::string path, std::size_t record, std::size_t buffer_bytes)
    : path_(std::move(path)), record_(record) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw CoreError("cannot open spill file '" + path_ + "': " + std::strerror(errno));
  std::size_t n = std::max<std::size_t>(buffer_bytes / record, 16);
  buf_.resize(n * record);
}

SpillReader::~SpillReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool SpillReader::refill() {
  std::size_t got = 0;
  while (got < buf_.size()) {
    ssize_t n = ::read(fd_, buf_.data() + got, buf_.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw CoreError("cannot read spill file '" + path_ + "': " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got % record_ != 0) throw CoreError("spill file '" + path_ + "' is truncated");
  pos_ = 0;
  end_ = got;
  return got > 0;
}

}  // namespace aigc::ngram::stages
