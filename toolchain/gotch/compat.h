// Force-included (CGO_CXXFLAGS=-include) when compiling gotch v0.9.1's C++ wrapper.
// gotch v0.9.1 was generated for libtorch 2.1; libtorch 2.6 changed three signatures it calls.
// Declaring torch:: overloads with the old signatures makes those calls resolve here (a declaration in
// namespace torch is found before the at:: one reached through `using namespace at`), without
// patching gotch's files. Cachet uses none of the three ops.
#pragma once
#ifdef __cplusplus
#include <torch/version.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#include <ATen/ATen.h>
#include <optional>
#include <stdexcept>
#include <tuple>

namespace torch {

// 2.6 added alpha and out_dtype before transpose_result.
inline at::Tensor _cslt_sparse_mm(const at::Tensor &compressed_a, const at::Tensor &dense_b,
                                  const at::Tensor &bias, bool transpose_result) {
  std::optional<at::Tensor> b;
  if (bias.defined()) b = bias;
  return at::_cslt_sparse_mm(compressed_a, dense_b, b, std::nullopt, std::nullopt, transpose_result);
}

// 2.6 returns one tensor (no amax) and reorders the arguments; gotch's 2.1 form cannot be honoured.
inline std::tuple<at::Tensor, at::Tensor> _scaled_mm(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                                     std::optional<at::ScalarType>, const at::Tensor &,
                                                     const at::Tensor &, const at::Tensor &) {
  throw std::runtime_error("_scaled_mm: the libtorch 2.1 signature gotch uses is not available in libtorch >= 2.6");
}

inline std::tuple<at::Tensor, at::Tensor> _scaled_mm_out(at::Tensor &, at::Tensor &, const at::Tensor &,
                                                         const at::Tensor &, const at::Tensor &,
                                                         std::optional<at::ScalarType>, const at::Tensor &,
                                                         const at::Tensor &, const at::Tensor &) {
  throw std::runtime_error("_scaled_mm_out: the libtorch 2.1 signature gotch uses is not available in libtorch >= 2.6");
}

}  // namespace torch
#endif
#endif
