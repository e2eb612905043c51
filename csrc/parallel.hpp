#pragma once
// A minimal parallel-for over an index range, shared by the algorithm families.
#include <cstddef>
#include <functional>

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

}  // namespace aigc
