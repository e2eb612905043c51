// A stand-alone driver of the sampler for sanitizer builds (ASan + UBSan):
// thousands of random and adversarial rows (ties, -inf, huge values, sorted
// rows, NaN, all-equal rows) through sample_row and filter_row, checking that
// every draw is inside the kept set and every distribution sums to 1.
// Not part of the package build (a .cc file: the CMake glob takes *.cpp);
// tests/test_sampling_sanitizers.py compiles and runs it.
#include <cstdio>
#include <random>
#include <vector>
#include <cmath>
#include <stdexcept>
#include "sampling/sampling.hpp"

using namespace aigc::sampling;
int main() {
  std::mt19937 g(42);
  long ok = 0, errors = 0;
  for (int it = 0; it < 3000; ++it) {
    long n = std::uniform_int_distribution<long>(1, it % 10 == 0 ? 70000 : 3000)(g);
    std::vector<float> x(n);
    int kind = it % 7;
    std::normal_distribution<float> d(0, 1 + (it % 5));
    for (auto& v : x) v = d(g);
    if (kind == 1) for (auto& v : x) v = std::round(v);                 // ties
    if (kind == 2) for (long i = 0; i < n; i += 3) x[i] = -INFINITY;    // -inf
    if (kind == 3) for (auto& v : x) v *= 1e37f;                        // huge
    if (kind == 4) for (long i = 0; i < n; ++i) x[i] = float(i);        // ascending
    if (kind == 5 && n > 2) x[n / 2] = NAN;                             // error
    if (kind == 6) for (auto& v : x) v = 1.0f;                          // all equal
    SamplingParams p;
    p.temperature = (it % 11 == 0) ? 0.0f : std::exp(std::uniform_real_distribution<float>(-8, 3)(g));
    p.top_k = std::uniform_int_distribution<int>(-2, 100)(g);
    p.top_p = (it % 3 == 0) ? 1.0f : std::uniform_real_distribution<float>(1e-6f, 1.0f)(g);
    p.min_p = (it % 4 == 0) ? std::uniform_real_distribution<float>(0, 1)(g) : 0.0f;
    std::vector<int> hist;
    if (it % 5 == 0) { p.repetition_penalty = 1.5f; p.presence_penalty = 0.3f; p.frequency_penalty = 0.1f;
      for (int j = 0; j < 20; ++j) hist.push_back(std::uniform_int_distribution<int>(-1, int(n - 1))(g)); }
    std::vector<unsigned char> scratch(scratch_bytes(n));
    std::vector<float> probs(n);
    std::vector<unsigned char> kept(n);
    try {
      int t = sample_row(x.data(), n, p, hist.data(), (long)hist.size(), DrawKey{1, 2, (unsigned long)it}, scratch.data());
      filter_row(x.data(), n, p, hist.data(), (long)hist.size(), scratch.data(), probs.data(), kept.data());
      if (t < 0 || t >= n || !kept[t] ) { printf("BAD token %d n=%ld it=%d kept=%d\n", t, n, it, t>=0&&t<n?kept[t]:-1); return 1; }
      double s = 0; for (float q : probs) s += q;
      if (std::fabs(s - 1) > 1e-4) { printf("BAD sum %f it=%d\n", s, it); return 1; }
      ++ok;
    } catch (const std::invalid_argument& e) { ++errors; if (kind != 5) { printf("unexpected error it=%d: %s\n", it, e.what()); return 1; } }
  }
  printf("ok=%ld errors=%ld\n", ok, errors);
}
