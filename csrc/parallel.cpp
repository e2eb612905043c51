#include "parallel.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace aigc {

unsigned default_thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1u : n;
}

void parallel_for(std::size_t n, unsigned threads, std::size_t min_chunk,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  if (threads == 0) threads = default_thread_count();
  min_chunk = std::max<std::size_t>(min_chunk, 1);
  std::size_t chunks = std::min<std::size_t>(threads, (n + min_chunk - 1) / min_chunk);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto run = [&](std::size_t begin, std::size_t end) {
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(chunks - 1);
  std::size_t step = (n + chunks - 1) / chunks;
  for (std::size_t c = 1; c < chunks; ++c) {
    std::size_t begin = c * step;
    std::size_t end = std::min(n, begin + step);
    if (begin >= end) break;
    workers.emplace_back(run, begin, end);
  }
  run(0, std::min(n, step));
  for (auto& w : workers) w.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace aigc
