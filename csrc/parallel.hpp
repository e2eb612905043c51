#pragma once
// A minimal parallel-for over an index range, shared by the algorithm families.
#include <cstddef>
#include <functional>
#include <string>

namespace aigc {

// Number of worker threads to use when the caller passes 0: the hardware
// concurrency (at least 1).
unsigned default_thread_count();

// Calls fn(begin, end) on contiguous chunks covering [0, n) from up to
// `threads` threads (0 = default_thread_count()). Chunks are at least
// `min_chunk` items so tiny ranges stay on the calling thread. The first
// exception thrown by any chunk is rethrown on the calling thread after all
// threads have joined.
void parallel_for(std::size_t n, unsigned threads, std::size_t min_chunk,
                  const std::function<void(std::size_t, std::size_t)>& fn);

// Makes the text of chunks [0, n) on up to `threads` worker threads
// (0 = default_thread_count()) and hands each to consume(chunk, text), in
// order, on the calling thread: make(worker, chunk, out) appends chunk's text to an empty
// `out`; worker in [0, threads) tells a thread's own state apart. At most
// 2 * threads chunks are held at once. The first exception (from make or
// consume) stops the work and is rethrown after all threads have joined.
void ordered_chunks(std::size_t n, unsigned threads,
                    const std::function<void(unsigned, std::size_t, std::string&)>& make,
                    const std::function<void(std::size_t, const std::string&)>& consume);

}  // namespace aigc
