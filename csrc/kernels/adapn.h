// adapn: adaptive patch normalisation, shared by the CPU and CUDA kernels.
//
// Layout: neighbours (N, k, C, PP) and queries (N, C, pp) contiguous, N the flattened
// leading dims, PP / pp the values of one neighbour / query patch. The work unit is a
// group g = n*C + c: one query patch and the k neighbour patches normalised against it,
// so the query statistics are computed once per group and the query gradient needs
// no atomics.
//
// Forward, per neighbour patch z (PP values) and its query q (pp values), unbiased
// variances:  out = (z - mean_z) / sqrt(var_z + eps) * sqrt(var_q + eps) + mean_q.
//
// Backward, with x = (z - mean_z) / std_z, std = sqrt(var + eps), g = dL/dout:
//   dL/dz_j = std_q / std_z * (g_j - sum(g)/PP - x_j * sum(g x)/(PP - 1))
//     (the usual normalisation backward; PP - 1 because the variance is unbiased),
//   dL/dq_j = G1/pp + G2 * (q_j - mean_q) / ((pp - 1) * std_q)
//     with G1 = sum over the k patches of sum(g)   (the mean_q path)
//     and  G2 = sum over the k patches of sum(g x) (the std_q path).
#pragma once

#include <math.h>

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

struct AdapnDims {
  int64_t N, k, C, PP, pp;
};

SR_HOST_DEVICE int64_t adapn_groups(const AdapnDims& d) { return d.N * d.C; }

// First value of neighbour patch r of group g; patch r + 1 is C*PP further on.
SR_HOST_DEVICE int64_t adapn_neighbor_offset(const AdapnDims& d, int64_t g, int64_t r) {
  return ((g / d.C * d.k + r) * d.C + g % d.C) * d.PP;
}

SR_HOST_DEVICE int64_t adapn_query_offset(const AdapnDims& d, int64_t g) { return g * d.pp; }

// Overloads rather than std::sqrt, which nvcc does not promise in device code.
SR_HOST_DEVICE float adapn_sqrt(float x) { return sqrtf(x); }
SR_HOST_DEVICE double adapn_sqrt(double x) { return sqrt(x); }

// A patch's statistics about its first value: mean = shift + dmean. Sums of x - shift
// stay small when |mean| >> std (feature maps often sit far from 0), so they keep the
// digits a sum of the raw values loses (at mean 1e4, float32's ulp is 1e-3), and
// x - shift is exact for the values near the shift (Sterbenz).
template <typename Acc>
struct Moments {
  Acc shift, dmean, var;  // var unbiased
};

template <typename Acc>
SR_HOST_DEVICE Acc moments_mean(const Moments<Acc>& m) {
  return m.shift + m.dmean;
}

// x - mean, computed as (x - shift) - dmean.
template <typename Acc>
SR_HOST_DEVICE Acc centred(const Moments<Acc>& m, Acc x) {
  return (x - m.shift) - m.dmean;
}

// sum of f(e) for e in [0, n), in 8 interleaved partial sums: independent add chains
// the CPU overlaps (and vectorises), where one running sum waits on every add's
// latency. Deterministic: the order depends on n only.
template <typename Acc, typename F>
SR_HOST_DEVICE Acc lane_sum(int64_t n, F f) {
  constexpr int kLanes = 8;
  Acc part[kLanes];
  for (int l = 0; l < kLanes; ++l) part[l] = Acc(0);
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += f(e + l);
  for (int l = 0; e < n; ++e, ++l) part[l] += f(e);
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

// Two passes (the mean, then squares about it): the one-pass sum-of-squares formula
// cancels catastrophically when |mean| >> std. n >= 1 (the kernels never call it on
// an empty patch), so x[0] exists.
template <typename T, typename Acc>
SR_HOST_DEVICE Moments<Acc> patch_moments(const T* x, int64_t n) {
  Moments<Acc> m;
  m.shift = sr_cast<Acc>(x[0]);
  m.dmean = lane_sum<Acc>(n, [&](int64_t e) { return sr_cast<Acc>(x[e]) - m.shift; }) / Acc(n);
  const Acc ss = lane_sum<Acc>(n, [&](int64_t e) {
    const Acc dev = centred(m, sr_cast<Acc>(x[e]));
    return dev * dev;
  });
  m.var = ss / Acc(n - 1);
  return m;
}

// The constants of one (neighbour, query) pair. The forward is one multiply-add about
// the shift, out = (z - shift_z) * scale + offset: z - shift_z is exact near the patch's
// values and offset = mean_q - dmean_z * scale holds no large cancelling terms, where
// z * scale + (mean_q - mean_z * scale) would lose |mean_z| * ulp digits.
template <typename Acc>
struct AdapnCoef {
  Moments<Acc> z;
  Acc inv_std_z, mean_q, std_q, scale, offset;
};

template <typename Acc>
SR_HOST_DEVICE AdapnCoef<Acc> adapn_coef(const Moments<Acc>& z, const Moments<Acc>& q, Acc eps) {
  AdapnCoef<Acc> k;
  k.z = z;
  k.inv_std_z = Acc(1) / adapn_sqrt(z.var + eps);
  k.mean_q = moments_mean(q);
  k.std_q = adapn_sqrt(q.var + eps);
  k.scale = k.std_q * k.inv_std_z;
  k.offset = k.mean_q - z.dmean * k.scale;
  return k;
}

template <typename Acc>
SR_HOST_DEVICE Acc adapn_xhat(const AdapnCoef<Acc>& k, Acc z) {
  return centred(k.z, z) * k.inv_std_z;
}

template <typename Acc>
SR_HOST_DEVICE Acc adapn_value(const AdapnCoef<Acc>& k, Acc z) {
  return (z - k.z.shift) * k.scale + k.offset;
}

// dL/dz_j of one neighbour patch of n values; sum_g = sum(g), sum_gx = sum(g x) over it.
template <typename Acc>
SR_HOST_DEVICE Acc adapn_grad_z(const AdapnCoef<Acc>& k, Acc g, Acc z, Acc sum_g, Acc sum_gx, int64_t n) {
  return k.std_q * k.inv_std_z * (g - sum_g / Acc(n) - adapn_xhat(k, z) * sum_gx / Acc(n - 1));
}

// dL/dq_j of a query patch of m values; G1, G2 summed over all its neighbour patches.
template <typename Acc>
SR_HOST_DEVICE Acc adapn_grad_q(const Moments<Acc>& qm, Acc std_q, Acc q, Acc G1, Acc G2, int64_t m) {
  return G1 / Acc(m) + G2 * centred(qm, q) / (Acc(m - 1) * std_q);
}

// One group, serially (the CPU kernel, and the brute-force check in the C++ tests).
// z / out: the k neighbour patches, zstride apart; q: the query patch.
template <typename T, typename Acc>
SR_HOST_DEVICE void adapn_group_fwd(const T* z, const T* q, T* out, int64_t k, int64_t zstride, int64_t PP, int64_t pp,
                                    Acc eps) {
  const Moments<Acc> qm = patch_moments<T, Acc>(q, pp);
  for (int64_t r = 0; r < k; ++r) {
    const T* zr = z + r * zstride;
    T* o = out + r * zstride;
    const AdapnCoef<Acc> c = adapn_coef(patch_moments<T, Acc>(zr, PP), qm, eps);
    for (int64_t e = 0; e < PP; ++e) o[e] = sr_cast<T>(adapn_value(c, sr_cast<Acc>(zr[e])));
  }
}

// g / gz laid out like z; gq like q.
template <typename T, typename Acc>
SR_HOST_DEVICE void adapn_group_bwd(const T* g, const T* z, const T* q, T* gz, T* gq, int64_t k, int64_t zstride,
                                    int64_t PP, int64_t pp, Acc eps) {
  const Moments<Acc> qm = patch_moments<T, Acc>(q, pp);
  const Acc std_q = adapn_sqrt(qm.var + eps);
  Acc G1 = Acc(0), G2 = Acc(0);
  for (int64_t r = 0; r < k; ++r) {
    const T* zr = z + r * zstride;
    const T* gr = g + r * zstride;
    const AdapnCoef<Acc> c = adapn_coef(patch_moments<T, Acc>(zr, PP), qm, eps);
    const Acc sg = lane_sum<Acc>(PP, [&](int64_t e) { return sr_cast<Acc>(gr[e]); });
    const Acc sgx =
        lane_sum<Acc>(PP, [&](int64_t e) { return sr_cast<Acc>(gr[e]) * adapn_xhat(c, sr_cast<Acc>(zr[e])); });
    T* o = gz + r * zstride;
    for (int64_t e = 0; e < PP; ++e)
      o[e] = sr_cast<T>(adapn_grad_z(c, sr_cast<Acc>(gr[e]), sr_cast<Acc>(zr[e]), sg, sgx, PP));
    G1 += sg;
    G2 += sgx;
  }
  for (int64_t e = 0; e < pp; ++e) gq[e] = sr_cast<T>(adapn_grad_q(qm, std_q, sr_cast<Acc>(q[e]), G1, G2, pp));
}

}  // namespace sr
