// Argument checks of the kernel entry points, the CPU kernels and the CUDA glue alike.
//
// They word errors as sr_ops/_validate.py does, "<name> must <rule>, got <value>", and raise
// the same Python classes: TypeError for dtypes (TORCH_CHECK_TYPE), ValueError for shapes,
// values, ranges and devices (TORCH_CHECK_VALUE). The public ops check first; these stop a
// direct torch.ops.sr_ops call from reading or writing out of bounds.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "kernels/common.h"

namespace sr_check {

// A shape spelled as a Python tuple, "(2, 3)" or "(5,)", as the Python checks print it.
inline std::string shape(at::IntArrayRef s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// A dtype spelled as Python prints it, "torch.float32".
inline std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kLong: return "torch.int64";
    case at::kInt: return "torch.int32";
    case at::kShort: return "torch.int16";
    case at::kChar: return "torch.int8";
    case at::kByte: return "torch.uint8";
    case at::kBool: return "torch.bool";
    default: return std::string("torch.") + c10::toString(t);
  }
}

inline void floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), name, " must be a floating-point tensor, got ",
                   dtype_name(t.scalar_type()));
}

// The index tensors the kernels read as int64 offsets (the public ops convert to int64).
inline void int64(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, name, " must be an int64 tensor, got ", dtype_name(t.scalar_type()));
}

// doc spells the dims, e.g. "(B, C, H, W)".
inline void dims(const at::Tensor& t, const char* name, int64_t n, const char* doc) {
  TORCH_CHECK_VALUE(t.dim() == n, name, " must have ", n, " dims ", doc, ", got shape ", shape(t.sizes()));
}

inline void dims_at_least(const at::Tensor& t, const char* name, int64_t n, const char* doc) {
  TORCH_CHECK_VALUE(t.dim() >= n, name, " must have at least ", n, " dims ", doc, ", got shape ", shape(t.sizes()));
}

inline void shape_is(const at::Tensor& t, const char* name, at::IntArrayRef expected, const char* doc) {
  TORCH_CHECK_VALUE(t.sizes() == expected, name, " must have shape ", doc, " = ", shape(expected), ", got ",
                    shape(t.sizes()));
}

// A check that reads several sizes at once: rule says what was expected, in words.
#define SR_CHECK_SHAPE(cond, t, name, rule) \
  TORCH_CHECK_VALUE(cond, name, " must be ", rule, ", got shape ", ::sr_check::shape((t).sizes()))

inline void same_dtype(const at::Tensor& t, const char* name, const at::Tensor& like, const char* like_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), like_name, " and ", name, " must share a dtype, got ",
                   dtype_name(like.scalar_type()), " and ", dtype_name(t.scalar_type()));
}

// Every tensor of a call on its first input's device: on another GPU it would be read
// through the wrong context.
inline void same_device(const at::Tensor& t, const char* name, const at::Tensor& like, const char* like_name) {
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like_name, "'s device ", like.device(), ", got ",
                    t.device());
}

// `like` and every tensor after it: one dtype and one device.
inline void same_dtype_device(const at::Tensor& like, const char* like_name,
                              std::initializer_list<std::pair<const at::Tensor*, const char*>> others) {
  for (const auto& [t, name] : others) {
    same_device(*t, name, like, like_name);
    same_dtype(*t, name, like, like_name);
  }
}

// At least one channel in dim `dim` of x (op names the op in the message, as Python's
// _validate.channels does).
inline void channels(const at::Tensor& x, const char* name, const char* op, int64_t dim = 1) {
  TORCH_CHECK_VALUE(x.size(dim) > 0, name, " must have at least one channel (", op, " needs C >= 1), got shape ",
                    shape(x.sizes()));
}

// A backward's incoming gradient: x's device and dtype (the kernels read it as x's type).
inline void grad_like(const at::Tensor& grad, const at::Tensor& x) {
  same_device(grad, "grad_out", x, "x");
  same_dtype(grad, "grad_out", x, "x");
}

inline void positive(int64_t v, const char* name) { TORCH_CHECK_VALUE(v > 0, name, " must be positive, got ", v); }

inline void eps(double v, const char* name = "eps") {
  TORCH_CHECK_VALUE(std::isfinite(v) && v >= 0, name, " must be a finite non-negative number, got ", v);
}

// A p x p window fits an H x W map (what names the map).
inline void patch_fits(int64_t p, int64_t H, int64_t W, const char* what, const char* name = "patch_size") {
  TORCH_CHECK_VALUE(p <= H && p <= W, name, " must be at most ", what, "'s height and width (", H, ", ", W, "), got ",
                    p);
}

// Positions of p-wide windows t apart along an axis of length n >= p.
inline int64_t grid(int64_t n, int64_t p, int64_t t) { return sr::grid_len(n, p, t); }

// Index values a kernel uses as offsets (gathers, atomics): one outside [0, n) would read or
// write out of bounds. One reduction on the tensor's device.
inline void index_range(const at::Tensor& idx, int64_t n, const char* name, const char* what = "") {
  if (idx.numel() == 0) return;
  const auto [lo, hi] = at::aminmax(idx);
  const int64_t l = lo.item<int64_t>(), h = hi.item<int64_t>();
  TORCH_CHECK_VALUE(l >= 0 && h < n, name, " values must lie in [0, ", n, ")", what[0] ? " (" : "", what,
                    what[0] ? ")" : "", ", got [", l, ", ", h, "]");
}

// t has the shape of another tensor or output (like_name), e.g. a backward's incoming
// gradient that of the forward's output.
inline void shape_like(const at::Tensor& t, const char* name, at::IntArrayRef expected, const char* like_name) {
  TORCH_CHECK_VALUE(t.sizes() == expected, name, " must have ", like_name, "'s shape ", shape(expected), ", got ",
                    shape(t.sizes()));
}

// The ClassSR windows: coords (N, 3) int64 (batch, row, col), order (N,) int64; window i is
// coords[order[i]] times scale, Q x Q, and must lie inside a (B, H, W) image. Reductions on
// the tensors' device, so the CPU and CUDA kernels check alike.
inline void windows(const at::Tensor& coords, const at::Tensor& order, int64_t B, int64_t H, int64_t W, int64_t Q,
                    int64_t scale) {
  int64(coords, "coords");
  int64(order, "order");
  SR_CHECK_SHAPE(coords.dim() == 2 && coords.size(1) == 3, coords, "coords", "(N, 3) (batch, row, col)");
  SR_CHECK_SHAPE(order.dim() == 1 && order.size(0) == coords.size(0), order, "order", "(N,) with coords' N");
  same_device(order, "order", coords, "coords");
  const int64_t N = coords.size(0);
  if (N == 0) return;
  index_range(order, N, "order", "the rows of coords");
  const at::Tensor lo = at::amin(coords, 0).cpu(), hi = at::amax(coords, 0).cpu();  // min(0) is slow on (N, 3)
  const int64_t* l = lo.const_data_ptr<int64_t>();
  const int64_t* h = hi.const_data_ptr<int64_t>();
  TORCH_CHECK_VALUE(l[0] >= 0 && h[0] < B, "coords batch values must lie in [0, ", B, "), got [", l[0], ", ", h[0],
                    "]");
  TORCH_CHECK_VALUE(l[1] >= 0 && h[1] * scale + Q <= H, "coords row values must lie in [0, ", (H - Q) / scale + 1,
                    ") for ", Q, " x ", Q, " windows of a height-", H, " image at scale ", scale, ", got [", l[1], ", ",
                    h[1], "]");
  TORCH_CHECK_VALUE(l[2] >= 0 && h[2] * scale + Q <= W, "coords col values must lie in [0, ", (W - Q) / scale + 1,
                    ") for ", Q, " x ", Q, " windows of a width-", W, " image at scale ", scale, ", got [", l[2], ", ",
                    h[2], "]");
}

}  // namespace sr_check
