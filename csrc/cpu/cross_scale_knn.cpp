// CPU forward kernel for cross_scale_knn.
//
// Dot products by pixel classes (cross_scale_knn_pixels.h): every patch dot product is a
// sum of P*P pixel dot products, taken from min(T, P)^2 pixel-by-pixel products of the two
// maps, one per class (dy % T, dx % T), at shifted positions. Those products are one BLAS
// GEMM per class with inner dimension C; for IGNN's p=3, t=2 they cost 4/9 of the C*p*p-long
// patch GEMM, because overlapping patches share pixels.
//
// The key map is first split by class (one copy, C-contiguous pixels). Work is then split
// in bands (a row of 8x8 query tiles): a band copies its key rows, column-major over the
// key grid so that a tile's key columns are one contiguous slice, and its query rows; each
// tile multiplies its query pixels with the key pixels of its windows' union.
//
// Ranking: the expansion ||q||^2 + ||c||^2 - 2 q.c only shortlists. Its error is at most
// tol * (||q||^2 + ||c||^2); every query keeps the k smallest upper bounds (expansion +
// error) seen so far, and lists each candidate whose lower bound does not exceed the k-th
// of them. No candidate left out can be among (or tie with) the k nearest, so measuring
// the listed ones exactly as sum((q - c)^2) and keeping the k best by (distance, index)
// gives exact ties to the smaller index. A candidate whose expansion is not finite is
// measured exactly at once (NaN distances rank last, sr::knn_before).
//
// Workspace: the class-split key map (the size of the key), and per thread one band of
// key and query pixels, one tile's GEMM outputs and the per-query lists; never the m x n
// distances nor the unfolded patches.
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "checks/cross_scale_knn.h"
#include "cpu/cross_scale_knn_pixels.h"
#include "cpu/dispatch.h"
#include "kernels/cross_scale_knn.h"

namespace {

using sr_cpu::PixelClass;

// Query tiles: 8x8 minimises the GEMM work per query for windowed search (larger tiles
// span more window positions, whose union grows); where every query has the same window
// (global search) nothing is wasted and 16x16 tiles amortise the class borders better.
constexpr int64_t kTileWindowed = 8, kTileShared = 16;
// GEMM outputs of one tile (all classes) beyond this are taken in column chunks; IGNN's
// windowed tiles (about 1.4 MB) fit, which measured faster than L2-sized chunks.
constexpr int64_t kChunkBytes = 4 << 20;

template <typename T>
struct Workspace {
  std::vector<T> kpix, knorm, kn;  // band: key pixels, their norms (per class); patch norms
  std::vector<T> qband, qbnorm;    // band: query pixels and norms (per class)
  std::vector<T> qpix, qnorm, qn;  // tile: query pixels and norms (per class); patch norms
  std::vector<T> g, lo, hi, ub;
  std::vector<const T*> term, src;                         // per patch offset: its GEMM row and column offset
  std::vector<int64_t> step;                               // ... and its column stride
  std::vector<int32_t> hits;                               // candidates of a column that reach the bound
  std::vector<std::vector<std::pair<T, int64_t>>> listed;  // per query: (lower bound, index)
  std::vector<int64_t> koff, qboff, qoff, goff;            // per class offsets
};

template <typename T>
class KnnForward {
 public:
  KnnForward(const T* q, const T* key, const sr::KnnDims& d, int64_t k, T* dist, int64_t* idx)
      : q_(q), key_(key), d_(d), k_(k), dist_(dist), idx_(idx), cls_(sr_cpu::pixel_classes(d.P, d.T)) {
    D_ = d.C * d.P * d.P;
    // Bound on |expansion - exact| / (||q||^2 + ||c||^2): each of the norms, the dot and the
    // direct sum has D-term rounding error, plus a few operations on top.
    tol_ = T(4 * D_ + 16) * std::numeric_limits<T>::epsilon();
    tiny_ = T(4 * D_) * std::numeric_limits<T>::min();
    tile_ = d.w1 == d.n1 && d.w2 == d.n2 ? kTileShared : kTileWindowed;
    max_rows_ = sr::imin(d.n1, d.w1 + (tile_ - 1) / d.S + 1);
    ksize_.push_back(0);
    for (const auto& c : cls_) ksize_.push_back(ksize_.back() + (d.n1 + c.sy - 1) * (d.n2 + c.sx - 1));
  }

  void run() {
    const int64_t t1 = (d_.m1 + tile_ - 1) / tile_, ncls = int64_t(cls_.size());
    // new T[] leaves them uninitialised (a std::vector would zero the key-sized copy first);
    // the gather below writes every element.
    std::unique_ptr<T[]> kcls(new T[d_.B * ksize_.back() * d_.C]), kcnorm(new T[d_.B * ksize_.back()]);
    kcls_ = kcls.get();
    kcnorm_ = kcnorm.get();
#pragma omp parallel if (sr_cpu::worth_threads(d_.B * d_.m1 * d_.m2 * D_))
    {
#pragma omp for schedule(static)
      for (int64_t task = 0; task < d_.B * ncls; ++task) {
        const int64_t b = task / ncls, c = task % ncls;
        const int64_t off = b * ksize_.back() + ksize_[c];
        sr_cpu::gather_class_rows(key_ + b * d_.C * d_.Hk * d_.Wk, d_.C, d_.Hk, d_.Wk, d_.T, cls_[c], 0,
                                  d_.n1 + cls_[c].sy - 1, d_.n2 + cls_[c].sx - 1, kcls_ + off * d_.C, kcnorm_ + off);
      }
      KnnForward self = *this;  // the band and tile being worked on are per thread
      Workspace<T> w;
      self.reserve(w);
#pragma omp for schedule(dynamic)
      for (int64_t band = 0; band < d_.B * t1; ++band) {
        const int64_t b = band / t1, i0 = (band % t1) * tile_;
        self.run_band(w, b, i0, sr::imin(d_.m1, i0 + tile_));
      }
    }
  }

 private:
  void reserve(Workspace<T>& w) const {
    const int64_t U = (d_.P + d_.T - 1) / d_.T, ncls = int64_t(cls_.size());
    w.kpix.resize(ncls * (max_rows_ + U) * (d_.n2 + U) * d_.C);
    w.knorm.resize(ncls * (max_rows_ + U) * (d_.n2 + U));
    w.kn.resize(max_rows_ * d_.n2);
    w.qband.resize(ncls * (tile_ + U) * (d_.m2 + U) * d_.C);
    w.qbnorm.resize(ncls * (tile_ + U) * (d_.m2 + U));
    w.qpix.resize(ncls * (tile_ + U) * (tile_ + U) * d_.C);
    w.qnorm.resize(ncls * (tile_ + U) * (tile_ + U));
    w.qn.resize(tile_ * tile_);
    w.lo.resize(d_.w1);
    w.hi.resize(d_.w1);
    w.hits.resize(d_.w1);
    w.ub.resize(tile_ * tile_ * k_);
    w.term.resize(d_.P * d_.P);
    w.src.resize(d_.P * d_.P);
    w.step.resize(d_.P * d_.P);
    w.listed.resize(tile_ * tile_);
    for (auto* v : {&w.koff, &w.qboff, &w.qoff, &w.goff}) v->resize(ncls + 1);
  }

  int64_t rows(const PixelClass& k) const { return nrow_ + k.sy - 1; }

  // Key rows [a_lo, a_lo + nrow) of the band, every key column, column-major; the band's
  // query rows, every query column.
  void run_band(Workspace<T>& w, int64_t b, int64_t i0, int64_t i1) {
    a_lo_ = sr::window_start(i0, d_.S, d_.half, d_.n1, d_.w1);
    nrow_ = sr::window_start(i1 - 1, d_.S, d_.half, d_.n1, d_.w1) + d_.w1 - a_lo_;
    const int64_t C = d_.C;
    w.koff[0] = w.qboff[0] = 0;
    for (size_t c = 0; c < cls_.size(); ++c) {
      const PixelClass& k = cls_[c];
      const int64_t R = rows(k), NB = d_.n2 + k.sx - 1, src0 = b * ksize_.back() + ksize_[c];
      for (int64_t B = 0; B < NB; ++B)
        for (int64_t A = 0; A < R; ++A) {
          const int64_t dst = w.koff[c] + B * R + A, src = src0 + (a_lo_ + A) * NB + B;
          std::memcpy(w.kpix.data() + dst * C, kcls_ + src * C, C * sizeof(T));
          w.knorm[dst] = kcnorm_[src];
        }
      w.koff[c + 1] = w.koff[c] + R * NB;
      const int64_t QR = i1 - i0 + k.sy - 1, QB = d_.m2 + k.sx - 1;
      sr_cpu::gather_class_rows(q_ + b * C * d_.H * d_.W, C, d_.H, d_.W, d_.T, k, i0, QR, QB,
                                w.qband.data() + w.qboff[c] * C, w.qbnorm.data() + w.qboff[c]);
      w.qboff[c + 1] = w.qboff[c] + QR * QB;
    }
    for (int64_t col = 0; col < d_.n2; ++col)
      for (int64_t a = 0; a < nrow_; ++a) {
        T s = 0;
        for (size_t c = 0; c < cls_.size(); ++c)
          for (int64_t uy = 0; uy < cls_[c].sy; ++uy)
            for (int64_t ux = 0; ux < cls_[c].sx; ++ux) s += w.knorm[w.koff[c] + (col + ux) * rows(cls_[c]) + a + uy];
        w.kn[col * nrow_ + a] = s;
      }
    for (int64_t j0 = 0; j0 < d_.m2; j0 += tile_) run_tile(w, b, i0, i1, j0, sr::imin(d_.m2, j0 + tile_));
  }

  void run_tile(Workspace<T>& w, int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    ti_ = i1 - i0;
    tj_ = j1 - j0;
    i0_ = i0;
    j0_ = j0;
    const int64_t C = d_.C;
    w.qoff[0] = 0;
    for (size_t c = 0; c < cls_.size(); ++c) {
      const PixelClass& k = cls_[c];
      const int64_t QR = ti_ + k.sy - 1, QW = tj_ + k.sx - 1, QB = d_.m2 + k.sx - 1;
      for (int64_t I = 0; I < QR; ++I) {
        const int64_t dst = w.qoff[c] + I * QW, src = w.qboff[c] + I * QB + j0;
        std::memcpy(w.qpix.data() + dst * C, w.qband.data() + src * C, QW * C * sizeof(T));
        std::memcpy(w.qnorm.data() + dst, w.qbnorm.data() + src, QW * sizeof(T));
      }
      w.qoff[c + 1] = w.qoff[c] + QR * QW;
    }
    for (int64_t r = 0; r < ti_ * tj_; ++r) {
      T s = 0;
      for (size_t c = 0; c < cls_.size(); ++c)
        for (int64_t uy = 0; uy < cls_[c].sy; ++uy)
          for (int64_t ux = 0; ux < cls_[c].sx; ++ux) s += w.qnorm[w.qoff[c] + qpix_row(c, r, uy, ux)];
      w.qn[r] = s;
      std::fill(w.ub.begin() + r * k_, w.ub.begin() + (r + 1) * k_, std::numeric_limits<T>::infinity());
      w.listed[r].clear();
    }
    const int64_t c_lo = sr::window_start(j0, d_.S, d_.half, d_.n2, d_.w2);
    const int64_t c_hi = sr::window_start(j1 - 1, d_.S, d_.half, d_.n2, d_.w2) + d_.w2;
    // Chunk width: the GEMM outputs of all classes for `width` key columns fit kChunkBytes.
    const int64_t per_col = int64_t(cls_.size()) * (ti_ + 1) * (tj_ + 1) * (nrow_ + 1) * int64_t(sizeof(T));
    const int64_t width = sr::imax(1, kChunkBytes / sr::imax(1, per_col));
    for (int64_t cb = c_lo; cb < c_hi; cb += width) {
      const int64_t ce = sr::imin(c_hi, cb + width);
      chunk_gemm(w, cb, ce);
      for (int64_t r = 0; r < ti_ * tj_; ++r) scan(w, r, cb, ce);
    }
    for (int64_t r = 0; r < ti_ * tj_; ++r) finish(w, b, r);
  }

  // Row of query pixel (r's patch, step (uy, ux)) in class c's tile matrix.
  int64_t qpix_row(size_t c, int64_t r, int64_t uy, int64_t ux) const {
    return (r / tj_ + uy) * (tj_ + cls_[c].sx - 1) + r % tj_ + ux;
  }

  int64_t chunk_cols(size_t c, int64_t cb, int64_t ce) const { return (ce - cb + cls_[c].sx - 1) * rows(cls_[c]); }

  // g[class] = (query pixels of the tile) x (key pixels of columns [cb, ce + sx - 1))^T, one
  // BLAS GEMM per class through at::mm_out (torch exports no lower-level GEMM entry point).
  void chunk_gemm(Workspace<T>& w, int64_t cb, int64_t ce) {
    w.goff[0] = 0;
    for (size_t c = 0; c < cls_.size(); ++c)
      w.goff[c + 1] = w.goff[c] + (w.qoff[c + 1] - w.qoff[c]) * chunk_cols(c, cb, ce);
    if (int64_t(w.g.size()) < w.goff.back()) w.g.resize(w.goff.back());
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    for (size_t c = 0; c < cls_.size(); ++c) {
      const int64_t nq = w.qoff[c + 1] - w.qoff[c], nk = chunk_cols(c, cb, ce);
      T* kp = w.kpix.data() + (w.koff[c] + cb * rows(cls_[c])) * d_.C;
      at::Tensor g = at::from_blob(w.g.data() + w.goff[c], {nq, nk}, opts);
      at::mm_out(g, at::from_blob(w.qpix.data() + w.qoff[c] * d_.C, {nq, d_.C}, opts),
                 at::from_blob(kp, {nk, d_.C}, opts).t());
    }
  }

  T exact(const Workspace<T>& w, int64_t r, int64_t a, int64_t col) const {
    T s = 0;
    for (size_t c = 0; c < cls_.size(); ++c)
      for (int64_t uy = 0; uy < cls_[c].sy; ++uy)
        for (int64_t ux = 0; ux < cls_[c].sx; ++ux) {
          const T* qrow = w.qpix.data() + (w.qoff[c] + qpix_row(c, r, uy, ux)) * d_.C;
          const T* krow = w.kpix.data() + (w.koff[c] + (col + ux) * rows(cls_[c]) + a - a_lo_ + uy) * d_.C;
          s += sr_cpu::sq_diff(qrow, krow, d_.C);
        }
    return s;
  }

  // Query r against key columns [cb, ce) of its window, one key column (w1 candidates) at a
  // time: dot products summed from the P*P GEMM rows, bounds, then the few candidates whose
  // lower bound reaches the k-th upper bound so far (most columns have none).
  void scan(Workspace<T>& w, int64_t r, int64_t cb, int64_t ce) {
    const int64_t i = i0_ + r / tj_, j = j0_ + r % tj_;
    const int64_t a0 = sr::window_start(i, d_.S, d_.half, d_.n1, d_.w1);
    const int64_t b0 = sr::window_start(j, d_.S, d_.half, d_.n2, d_.w2);
    const int64_t lo_col = sr::imax(b0, cb), hi_col = sr::imin(b0 + d_.w2, ce), n = d_.w1;
    const T qn = w.qn[r], inf = std::numeric_limits<T>::infinity();
    int64_t nt = 0;
    for (size_t c = 0; c < cls_.size(); ++c) {
      const int64_t nk = chunk_cols(c, cb, ce), R = rows(cls_[c]);
      for (int64_t uy = 0; uy < cls_[c].sy; ++uy)
        for (int64_t ux = 0; ux < cls_[c].sx; ++ux, ++nt) {
          w.term[nt] = w.g.data() + w.goff[c] + qpix_row(c, r, uy, ux) * nk + (ux - cb) * R + (a0 - a_lo_ + uy);
          w.step[nt] = R;
        }
    }
    T* ub = w.ub.data() + r * k_;
    T *lo = w.lo.data(), *hi = w.hi.data();
    auto& listed = w.listed[r];
    for (int64_t col = lo_col; col < hi_col; ++col) {
      for (int64_t e = 0; e < nt; ++e) w.src[e] = w.term[e] + col * w.step[e];
      const T* kn = w.kn.data() + col * nrow_ + (a0 - a_lo_);
      T bound = ub[k_ - 1];
      const int64_t nhit =
          sr_cpu::column_bounds(w.src.data(), nt, n, qn, kn, tol_, tiny_, bound, lo, hi, w.hits.data());
      for (int64_t x = 0; x < nhit; ++x) {
        const int64_t t = w.hits[x];
        T l = lo[t], h = hi[t];
        if (l > bound) continue;
        if (l == -inf) {  // inf or NaN in a patch (or overflow): measure it now
          const T x = exact(w, r, a0 + t, col);
          l = h = std::isnan(x) ? inf : x;
          if (l > bound) continue;
        }
        listed.emplace_back(l, (a0 + t) * d_.n2 + col);
        if (h < bound) {
          int64_t s = k_ - 1;
          for (; s > 0 && h < ub[s - 1]; --s) ub[s] = ub[s - 1];
          ub[s] = h;
          bound = ub[k_ - 1];
        }
      }
    }
  }

  // Exact distances of query r's listed candidates; the k best, sorted, go out.
  void finish(Workspace<T>& w, int64_t b, int64_t r) {
    const int64_t i = i0_ + r / tj_, j = j0_ + r % tj_;
    const int64_t out = (b * d_.m1 * d_.m2 + i * d_.m2 + j) * k_;
    T* bd = dist_ + out;
    int64_t* bi = idx_ + out;
    sr::topk_reset(bd, bi, k_);
    const T bound = w.ub[r * k_ + k_ - 1];
    for (const auto& [l, n] : w.listed[r]) {
      if (l > bound) continue;
      sr::topk_insert(bd, bi, k_, exact(w, r, n / d_.n2, n % d_.n2), n);
    }
  }

  const T *q_, *key_;
  sr::KnnDims d_;
  int64_t k_;
  T* dist_;
  int64_t* idx_;
  std::vector<PixelClass> cls_;
  std::vector<int64_t> ksize_;  // per class: offset of its pixels in the class-split key map
  T *kcls_ = nullptr, *kcnorm_ = nullptr;
  int64_t D_, max_rows_, tile_;
  T tol_, tiny_;
  // The band and tile being worked on (each thread works on its own copy: see run()).
  int64_t a_lo_ = 0, nrow_ = 0, i0_ = 0, j0_ = 0, ti_ = 0, tj_ = 0;
};

std::tuple<at::Tensor, at::Tensor> knn_fwd_cpu(const at::Tensor& query_in, const at::Tensor& key_in, int64_t k,
                                               int64_t patch_size, int64_t stride, int64_t window, int64_t scale,
                                               int64_t window_offset) {
  sr_cpu::check_cpu_float(query_in, "query");
  const auto d = sr_check::knn_dims(query_in, key_in, k, patch_size, stride, window, scale, window_offset);
  TORCH_CHECK_TYPE(query_in.scalar_type() == at::kFloat || query_in.scalar_type() == at::kDouble,
                   "query must be float32 or float64 (the CPU kernel), got ", query_in.scalar_type());
  const at::Tensor query = query_in.contiguous(), key = key_in.contiguous();
  at::Tensor dist = at::empty({d.B, d.m1 * d.m2, k}, query.options());
  at::Tensor idx = at::empty({d.B, d.m1 * d.m2, k}, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "knn_fwd_cpu", [&] {
    KnnForward<scalar_t>(query.const_data_ptr<scalar_t>(), key.const_data_ptr<scalar_t>(), d, k,
                         dist.mutable_data_ptr<scalar_t>(), idx.mutable_data_ptr<int64_t>())
        .run();
  });
  return {dist, idx};
}

}  // namespace

// The schemas of the kernels below (sr_ops/ops/<op>.py calls them; the CUDA glue registers
// the same names for CUDA tensors).
TORCH_LIBRARY_FRAGMENT(sr_ops, m) {
  // window <= 0: every key patch is a candidate.
  m.def(
      "_cross_scale_knn_fwd(Tensor query, Tensor key, int k, int patch_size, int stride, int window, "
      "int scale, int window_offset=-1) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(sr_ops, CPU, m) { m.impl("_cross_scale_knn_fwd", &knn_fwd_cpu); }
