#pragma once
// CUDA sampling kernels: the interface between the kernels (.cu) and the
// host-side module glue (module.cpp). No pybind11, no torch.
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "sampling/sampling.hpp"

namespace aigc::cuda {

// Error codes written to status[row] (0 = ok): 1..6 = sampling::ParamError,
// then row errors. Mirrored in aigc_engine/ops.py.
constexpr int kErrNan = 10;
constexpr int kErrPosInf = 11;
constexpr int kErrNoFinite = 12;
constexpr int kErrHistory = 13;

// One launch over `rows` rows of `vocab` float32 scores (row-major, all device
// pointers). Per-row parameters packed, one sampling::SamplingParams per row
// (the layout every face shares); keys as int64
// read as uint64; history is (rows, history_len) int64, negative = padding.
// workspace holds workspace_floats(rows, vocab) floats. Exactly one of out
// (rows int64 tokens) and probs (rows x vocab float32) is non-null.
struct LaunchArgs {
  const float* logits = nullptr;
  std::int64_t rows = 0;
  std::int64_t vocab = 0;
  const sampling::SamplingParams* params = nullptr;
  const std::int64_t* seed = nullptr;
  const std::int64_t* stream = nullptr;
  const std::int64_t* step = nullptr;
  const std::int64_t* history = nullptr;
  std::int64_t history_len = 0;
  float* workspace = nullptr;
  std::int32_t* status = nullptr;
  std::int64_t* out = nullptr;
  float* probs = nullptr;
};

std::size_t workspace_floats(std::int64_t rows, std::int64_t vocab);

// Enqueues the kernel on `stream`; returns the launch error (cudaSuccess if none).
cudaError_t launch_sampling(const LaunchArgs& args, cudaStream_t stream);

}  // namespace aigc::cuda
