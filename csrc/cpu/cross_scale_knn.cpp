// CPU kernels for cross_scale_knn.
//
// Forward: queries are taken in 8x8 tiles of patches. Neighbouring queries' windows
// overlap, so a tile's candidates are the union of its windows; the tile's patches and
// its candidates are gathered into two small row-major matrices and their dot products
// come from one BLAS GEMM. Distances follow from ||q||^2 + ||c||^2 - 2 q.c, and a running
// top-k per query keeps the k best inside that query's own window. Workspace is
// O(tile); the m x n distance matrix and the unfolded maps never exist.
//
// Backward: d dist / d q = 2 (q - c), scattered over the patch pixels. Each (b, c)
// plane is independent, so planes run in parallel with no atomics (deterministic).
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "cpu/dispatch.h"
#include "kernels/cross_scale_knn.h"

namespace {

constexpr int64_t kTile = 8;

sr::KnnDims check_dims(const at::Tensor& q, const at::Tensor& key, int64_t k, int64_t P,
                       int64_t T, int64_t window, int64_t S) {
  TORCH_CHECK(q.dim() == 4 && key.dim() == 4, "query and key must be (B, C, H, W)");
  TORCH_CHECK(q.size(0) == key.size(0) && q.size(1) == key.size(1),
              "query and key must agree in batch and channels");
  TORCH_CHECK(P > 0 && T > 0 && S > 0 && k > 0, "k, patch_size, stride, scale must be positive");
  TORCH_CHECK(P <= q.size(2) && P <= q.size(3) && P <= key.size(2) && P <= key.size(3),
              "patch_size larger than a map");
  auto d = sr::knn_dims(q.size(0), q.size(1), q.size(2), q.size(3), key.size(2), key.size(3),
                        P, T, S, window);
  TORCH_CHECK(k <= d.w1 * d.w2, "k=", k, " is more than the ", d.w1 * d.w2,
              " candidates in a window");
  return d;
}

template <typename T>
void gather_patch(const T* map, int64_t C, int64_t H, int64_t W, int64_t P, int64_t y,
                  int64_t x, T* row) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t dy = 0; dy < P; ++dy) {
      const T* src = map + (c * H + y + dy) * W + x;
      for (int64_t dx = 0; dx < P; ++dx) *row++ = src[dx];
    }
}

template <typename T>
T sum_squares(const T* row, int64_t n) {
  T s = 0;
  for (int64_t e = 0; e < n; ++e) s += row[e] * row[e];
  return s;
}

template <typename T>
T sq_diff(const T* x, const T* y, int64_t n) {
  T s = 0;
  for (int64_t e = 0; e < n; ++e) s += (x[e] - y[e]) * (x[e] - y[e]);
  return s;
}

// One band = one row of query tiles. Its candidates span key rows [a_lo, a_hi) and
// every key column; they are gathered once per band, column-major over key patches
// ((c, a) order), so that each tile's candidates are one contiguous slice of rows.
template <typename T>
void knn_forward(const at::Tensor& query, const at::Tensor& key, const sr::KnnDims d,
                 int64_t k, at::Tensor& dist_out, at::Tensor& idx_out) {
  const int64_t D = d.C * d.P * d.P;
  const int64_t t1 = (d.m1 + kTile - 1) / kTile, t2 = (d.m2 + kTile - 1) / kTile;
  const T* qp = query.const_data_ptr<T>();
  const T* kp = key.const_data_ptr<T>();
  T* dist_ptr = dist_out.mutable_data_ptr<T>();
  int64_t* idx_ptr = idx_out.mutable_data_ptr<int64_t>();
  const auto opts = query.options();
  const int64_t max_rows = sr::imin(d.n1, d.w1 + (kTile - 1) / d.S + 1);
  const int64_t max_cols = sr::imin(d.n2, d.w2 + (kTile - 1) / d.S + 1);
#pragma omp parallel if (sr_cpu::worth_threads(d.B * d.m1 * d.m2 * D))
  {
    at::Tensor Q = at::empty({kTile * kTile, D}, opts);
    at::Tensor K = at::empty({max_rows * d.n2, D}, opts);
    at::Tensor G = at::empty({kTile * kTile, max_rows * max_cols}, opts);
    std::vector<T> qn(kTile * kTile), kn(max_rows * d.n2);
#pragma omp for schedule(dynamic)
    for (int64_t band = 0; band < d.B * t1; ++band) {
      const int64_t b = band / t1, i0 = (band % t1) * kTile, i1 = sr::imin(d.m1, i0 + kTile);
      const int64_t a_lo = sr::window_start(i0, d.S, d.half, d.n1, d.w1);
      const int64_t nrow = sr::window_start(i1 - 1, d.S, d.half, d.n1, d.w1) + d.w1 - a_lo;
      const T* qmap = qp + b * d.C * d.H * d.W;
      const T* kmap = kp + b * d.C * d.Hk * d.Wk;
      T* Kd = K.mutable_data_ptr<T>();
      for (int64_t c = 0; c < d.n2; ++c)
        for (int64_t a = a_lo; a < a_lo + nrow; ++a) {
          T* row = Kd + (c * nrow + a - a_lo) * D;
          gather_patch(kmap, d.C, d.Hk, d.Wk, d.P, d.T * a, d.T * c, row);
          kn[c * nrow + a - a_lo] = sum_squares(row, D);
        }
      for (int64_t j0 = 0; j0 < d.m2; j0 += kTile) {
        const int64_t j1 = sr::imin(d.m2, j0 + kTile), tw = j1 - j0;
        const int64_t c_lo = sr::window_start(j0, d.S, d.half, d.n2, d.w2);
        const int64_t c_hi = sr::window_start(j1 - 1, d.S, d.half, d.n2, d.w2) + d.w2;
        const int64_t nq = (i1 - i0) * tw, nk = (c_hi - c_lo) * nrow;
        T* Qd = Q.mutable_data_ptr<T>();
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < j1; ++j) {
            T* row = Qd + ((i - i0) * tw + (j - j0)) * D;
            gather_patch(qmap, d.C, d.H, d.W, d.P, d.T * i, d.T * j, row);
            qn[(i - i0) * tw + (j - j0)] = sum_squares(row, D);
          }
        at::Tensor g = G.narrow(0, 0, nq).narrow(1, 0, nk);
        at::mm_out(g, Q.narrow(0, 0, nq), K.narrow(0, c_lo * nrow, nk).t());
        const T* gd = g.const_data_ptr<T>();
        const int64_t gs = g.stride(0);
        const T* kn_tile = kn.data() + c_lo * nrow;
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t a0 = sr::window_start(i, d.S, d.half, d.n1, d.w1);
          for (int64_t j = j0; j < j1; ++j) {
            const int64_t r = (i - i0) * tw + (j - j0), q = i * d.m2 + j;
            const int64_t b0 = sr::window_start(j, d.S, d.half, d.n2, d.w2);
            T* bd = dist_ptr + (b * d.m1 * d.m2 + q) * k;
            int64_t* bi = idx_ptr + (b * d.m1 * d.m2 + q) * k;
            sr::topk_reset(bd, bi, k);
            // Column-major walk (contiguous in G); topk_insert breaks ties by index,
            // so the visiting order does not matter.
            for (int64_t c = b0; c < b0 + d.w2; ++c)
              for (int64_t a = a0; a < a0 + d.w1; ++a) {
                const int64_t col = (c - c_lo) * nrow + (a - a_lo);
                const T v = sr::sq_dist_from_dot(qn[r], kn_tile[col], gd[r * gs + col]);
                sr::topk_insert(bd, bi, k, v, a * d.n2 + c);
              }
            // The expansion only ranks; report the exact sum((q - c)^2) of the winners,
            // free of its cancellation error, re-sorted (ties to the smaller index).
            const T* qrow = Qd + r * D;
            for (int64_t s = 0; s < k; ++s) {
              const int64_t a = bi[s] / d.n2, c = bi[s] % d.n2;
              bd[s] = sq_diff(qrow, Kd + (c * nrow + a - a_lo) * D, D);
            }
            sr::sort_topk(bd, bi, k);
          }
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> knn_fwd_cpu(const at::Tensor& query_in,
                                               const at::Tensor& key_in, int64_t k,
                                               int64_t patch_size, int64_t stride,
                                               int64_t window, int64_t scale) {
  sr_cpu::check_cpu_float(query_in, "query");
  sr_cpu::check_cpu_float(key_in, "key");
  TORCH_CHECK(query_in.scalar_type() == key_in.scalar_type(), "query and key dtypes differ");
  TORCH_CHECK(query_in.scalar_type() == at::kFloat || query_in.scalar_type() == at::kDouble,
              "the CPU kernel takes float32 or float64");
  const auto d = check_dims(query_in, key_in, k, patch_size, stride, window, scale);
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  at::Tensor dist = at::empty({d.B, d.m1 * d.m2, k}, query.options());
  at::Tensor idx = at::empty({d.B, d.m1 * d.m2, k}, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_fwd_cpu", [&] {
    knn_forward<scalar_t>(query, key, d, k, dist, idx);
  });
  return {dist, idx};
}

template <typename T>
void knn_backward(const T* g, const int64_t* idx, const T* q, const T* key, T* gq, T* gk,
                  const sr::KnnDims d, int64_t k) {
  const int64_t m = d.m1 * d.m2;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < d.B * d.C; ++plane) {
    const int64_t b = plane / d.C;
    const T* qm = q + plane * d.H * d.W;
    const T* km = key + plane * d.Hk * d.Wk;
    T* gqm = gq + plane * d.H * d.W;
    T* gkm = gk + plane * d.Hk * d.Wk;
    for (int64_t n = 0; n < m; ++n) {
      const int64_t y = d.T * (n / d.m2), x = d.T * (n % d.m2);
      for (int64_t r = 0; r < k; ++r) {
        const T w = T(2) * g[(b * m + n) * k + r];
        if (w == T(0)) continue;
        const int64_t c = idx[(b * m + n) * k + r];
        const int64_t ky = d.T * (c / d.n2), kx = d.T * (c % d.n2);
        for (int64_t dy = 0; dy < d.P; ++dy)
          for (int64_t dx = 0; dx < d.P; ++dx) {
            const T diff = w * (qm[(y + dy) * d.W + x + dx] - km[(ky + dy) * d.Wk + kx + dx]);
            gqm[(y + dy) * d.W + x + dx] += diff;
            gkm[(ky + dy) * d.Wk + kx + dx] -= diff;
          }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> knn_bwd_cpu(const at::Tensor& grad_dist,
                                               const at::Tensor& idx_in,
                                               const at::Tensor& query_in,
                                               const at::Tensor& key_in, int64_t patch_size,
                                               int64_t stride) {
  sr_cpu::check_cpu_float(query_in, "query");
  const auto d = check_dims(query_in, key_in, 1, patch_size, stride, -1, 1);
  const int64_t k = idx_in.size(-1);
  TORCH_CHECK(idx_in.sizes() == at::IntArrayRef({d.B, d.m1 * d.m2, k}) &&
                  grad_dist.sizes() == idx_in.sizes(),
              "grad_dist and idx must be (B, m, k)");
  TORCH_CHECK(idx_in.numel() == 0 ||
                  (idx_in.min().item<int64_t>() >= 0 && idx_in.max().item<int64_t>() < d.n1 * d.n2),
              "idx out of range of the key grid");
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  const at::Tensor g = grad_dist.to(query.scalar_type()).contiguous(), idx = idx_in.contiguous();
  at::Tensor gq = at::zeros_like(query), gk = at::zeros_like(key);
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_bwd_cpu", [&] {
    knn_backward<scalar_t>(g.const_data_ptr<scalar_t>(), idx.const_data_ptr<int64_t>(),
                           query.const_data_ptr<scalar_t>(), key.const_data_ptr<scalar_t>(),
                           gq.mutable_data_ptr<scalar_t>(), gk.mutable_data_ptr<scalar_t>(), d, k);
  });
  return {gq, gk};
}

}  // namespace

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) {
  m.impl("_cross_scale_knn_fwd", &knn_fwd_cpu);
  m.impl("_cross_scale_knn_bwd", &knn_bwd_cpu);
}
