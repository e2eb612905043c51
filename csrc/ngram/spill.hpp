#pragma once
// Spilling to disk for the bounded estimator: a private temporary directory
// that removes itself (on success and on failure), buffered files of fixed
// size records, and a sorter that keeps a block in memory, writes it as a
// sorted run when full, and merges the runs back in order.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>
#include <vector>

namespace aigc::ngram::stages {

// A directory made under `parent` ("" = $TMPDIR or /tmp) and removed with
// everything in it by the destructor.
class SpillDir {
 public:
  explicit SpillDir(const std::string& parent);
  ~SpillDir();
  SpillDir(const SpillDir&) = delete;
  SpillDir& operator=(const SpillDir&) = delete;
  // A new file name inside the directory (the file is removed with it).
  std::string new_file(const std::string& stem);
  void remove_file(const std::string& path);
  const std::string& path() const { return path_; }
  std::atomic<std::uint64_t> bytes_written{0};
  std::atomic<std::uint64_t> runs{0};

 private:
  std::mutex mu_;
  std::string path_;
  std::vector<std::string> files_;
  std::uint64_t serial_ = 0;
};

// Appends bytes to a new file; a write that fails (a full disk, a file size
// limit) is a CoreError that says which directory and how much was spilled.
class SpillWriter {
 public:
  SpillWriter(SpillDir& dir, std::string path, std::size_t buffer_bytes);
  ~SpillWriter();
  SpillWriter(const SpillWriter&) = delete;
  SpillWriter& operator=(const SpillWriter&) = delete;
  void write(const void* data, std::size_t n);
  void close();

 private:
  void flush();
  void write_direct(const char* data, std::size_t n);
  SpillDir& dir_;
  std::string path_;
  int fd_ = -1;
  std::vector<char> buf_;
  std::size_t used_ = 0;
};

// Reads a spill file sequentially in records of `record` bytes.
class SpillReader {
 public:
  SpillReader(std::string path, std::size_t record, std::size_t buffer_bytes);
  ~SpillReader();
  SpillReader(const SpillReader&) = delete;
  SpillReader& operator=(const SpillReader&) = delete;
  // The next record, or nullptr at the end.
  const char* next() {
    if (pos_ == end_ && !refill()) return nullptr;
    const char* r = buf_.data() + pos_;
    pos_ += record_;
    return r;
  }

 private:
  bool refill();
  std::string path_;
  std::size_t record_;
  int fd_ = -1;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
};

// Owner handle of sorters of different record types.
class SorterBase {
 public:
  virtual ~SorterBase() = default;
};

// Collects records in a block of at most `bytes`; a full block is sorted,
// compacted (`Combine` merges equal neighbours; return false to keep both)
// and written as a run. merge() then yields all records in order (equal keys
// from different runs are not combined).
template <class R, class Less>
class Sorter : public SorterBase {
 public:
  // `background`: sort and write full blocks on a thread of their own while
  // the next block fills (two blocks of half the size).
  Sorter(SpillDir& dir, std::string stem, std::size_t bytes, Less less,
         bool (*combine)(R&, const R&) = nullptr, bool background = true)
      : dir_(dir), stem_(std::move(stem)), less_(less), combine_(combine), background_(background) {
    cap_ = std::max<std::size_t>(bytes / sizeof(R) / (background ? 2 : 1), 1024);
    buf_.reserve(cap_);
  }
  ~Sorter() override {
    if (worker_.joinable()) worker_.join();
    for (const std::string& r : runs_) dir_.remove_file(r);
  }
  Sorter(const Sorter&) = delete;
  Sorter& operator=(const Sorter&) = delete;

  void push(const R& r) {
    if (buf_.size() == cap_) spill();
    buf_.push_back(r);
  }
  // Ends the input: the last block becomes a run, or stays in memory if it
  // is the only one.
  void finish() {
    if (runs_.empty() && !worker_.joinable()) {
      sort_block(buf_);
      buf_.shrink_to_fit();
    } else {
      if (!buf_.empty()) spill();
      wait();
      std::vector<R>().swap(buf_);
      std::vector<R>().swap(spare_);
    }
  }
  std::size_t runs() const { return runs_.size(); }
  std::size_t memory() const { return (buf_.capacity() + spare_.capacity()) * sizeof(R); }

  // Yields the records in order, one at a time.
  class Merger {
   public:
    Merger(const Sorter& s, std::size_t buffer_bytes) : less_(s.less_) {
      if (s.runs_.empty()) {
        mem_ = s.buf_.data();
        mem_end_ = mem_ + s.buf_.size();
        return;
      }
      const std::size_t each = std::max<std::size_t>(buffer_bytes / s.runs_.size(), 64 * sizeof(R));
      for (const std::string& path : s.runs_) {
        readers_.push_back(std::make_unique<SpillReader>(path, sizeof(R), each));
        const char* p = readers_.back()->next();
        if (p) heap_.push_back({reinterpret_cast<const R*>(p), readers_.size() - 1});
      }
      std::make_heap(heap_.begin(), heap_.end(), HeapLess{less_});
    }
    // The next record (valid until the next call), or nullptr at the end.
    const R* next() {
      if (readers_.empty()) return mem_ < mem_end_ ? mem_++ : nullptr;
      if (heap_.empty()) return nullptr;
      // The smallest head is the root: take it, put its run's next record in
      // its place (or the last head, when the run ends) and sift that down:
      // one pass down the heap instead of pop_heap's plus push_heap's.
      Head& top = heap_.front();
      current_ = *top.rec;
      if (const char* p = readers_[top.run]->next()) {
        top.rec = reinterpret_cast<const R*>(p);
      } else {
        top = heap_.back();
        heap_.pop_back();
      }
      sift_down();
      return &current_;
    }

   private:
    struct Head {
      const R* rec;
      std::size_t run;
    };
    void sift_down() {
      const std::size_t n = heap_.size();
      if (n < 2) return;
      const Head h = heap_[0];
      std::size_t i = 0;
      for (;;) {
        std::size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && less_(*heap_[c + 1].rec, *heap_[c].rec)) ++c;
        if (!less_(*heap_[c].rec, *h.rec)) break;
        heap_[i] = heap_[c];
        i = c;
      }
      heap_[i] = h;
    }
    struct HeapLess {
      Less less;
      bool operator()(const Head& a, const Head& b) const { return less(*b.rec, *a.rec); }
    };
    Less less_;
    const R* mem_ = nullptr;
    const R* mem_end_ = nullptr;
    std::vector<std::unique_ptr<SpillReader>> readers_;
    std::vector<Head> heap_;
    R current_;
  };
  Merger merge(std::size_t buffer_bytes) const { return Merger(*this, buffer_bytes); }

 private:
  void sort_block(std::vector<R>& b) const {
    std::sort(b.begin(), b.end(), less_);
    if (combine_ && !b.empty()) {
      std::size_t out = 0;
      for (std::size_t i = 1; i < b.size(); ++i)
        if (!combine_(b[out], b[i])) b[++out] = b[i];
      b.resize(out + 1);
    }
  }
  void write_block(std::vector<R>& b, const std::string& path) const {
    sort_block(b);
    SpillWriter w(dir_, path, std::min<std::size_t>(1 << 20, cap_ * sizeof(R)));
    w.write(b.data(), b.size() * sizeof(R));
    w.close();
    b.clear();
  }
  // Waits for the block being written; rethrows its error.
  void wait() {
    if (worker_.joinable()) worker_.join();
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }
  void spill() {
    std::string path = dir_.new_file(stem_);
    runs_.push_back(path);
    ++dir_.runs;
    if (!background_) {
      write_block(buf_, path);
      return;
    }
    wait();
    spare_.swap(buf_);  // buf_ gets the (empty) block written last time
    if (buf_.capacity() < cap_) buf_.reserve(cap_);
    worker_ = std::thread([this, path] {
      try {
        write_block(spare_, path);
      } catch (...) {
        error_ = std::current_exception();
      }
    });
  }

  SpillDir& dir_;
  std::string stem_;
  Less less_;
  bool (*combine_)(R&, const R&);
  bool background_;
  std::size_t cap_;
  std::vector<R> buf_, spare_;
  std::vector<std::string> runs_;
  std::thread worker_;
  std::exception_ptr error_;
};

}  // namespace aigc::ngram::stages
