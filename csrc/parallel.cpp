#include "parallel.hpp"

#include <algorithm>
#include <condition_variable>
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

void ordered_chunks(std::size_t n, unsigned threads,
                    const std::function<void(unsigned, std::size_t, std::string&)>& make,
                    const std::function<void(std::size_t, const std::string&)>& consume) {
  if (n == 0) return;
  if (threads == 0) threads = default_thread_count();
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, n));
  if (threads <= 1) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
      out.clear();
      make(0, i, out);
      consume(i, out);
    }
    return;
  }
  const std::size_t depth = 2 * static_cast<std::size_t>(threads);
  std::vector<std::string> slots(depth);
  std::vector<char> ready(depth, 0);
  std::size_t next = 0;      // the next chunk a worker takes
  std::size_t consumed = 0;  // chunks handed to consume
  bool stop = false;
  std::exception_ptr error;
  std::mutex mu;
  std::condition_variable cv;
  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!error) error = e;
    stop = true;
    cv.notify_all();
  };
  auto work = [&](unsigned worker) {
    for (;;) {
      std::size_t i;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || next >= n || next < consumed + depth; });
        if (stop || next >= n) return;
        i = next++;
      }
      std::string& out = slots[i % depth];
      out.clear();
      try {
        make(worker, i, out);
      } catch (...) {
        fail(std::current_exception());
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      ready[i % depth] = 1;
      cv.notify_all();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (unsigned w = 0; w < threads; ++w) workers.emplace_back(work, w);
  for (std::size_t i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return stop || ready[i % depth]; });
      if (stop) break;
    }
    try {
      consume(i, slots[i % depth]);
    } catch (...) {
      fail(std::current_exception());
      break;
    }
    std::lock_guard<std::mutex> lock(mu);
    ready[i % depth] = 0;
    consumed = i + 1;
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace aigc
