// The inverse index of the output-stationary pastes (gather_patches' backward,
// merge_patches), built with ATen ops on the windows' device before the launch; the same
// construction as sr_ops/triton/patch_tiles.py. Each window is binned into every
// kPasteTileH x kPasteTileW tile it overlaps by a stable sort of (window, tile) keys made in
// window order, so each tile lists its windows in ascending sequence position.
#pragma once

#include <ATen/ATen.h>

#include <limits>

#include "cuda/gather_patches.cuh"

namespace sr_glue {

struct PasteTiles {
  at::Tensor wy, wx, start, win;
  int64_t tiles_y = 0, tiles_x = 0;

  sr_cuda::PasteIndex index() const {
    return {wy.const_data_ptr<int32_t>(),
            wx.const_data_ptr<int32_t>(),
            start.const_data_ptr<int32_t>(),
            win.const_data_ptr<int32_t>(),
            tiles_y,
            tiles_x};
  }
};

// Windows coords[order[i]] * scale, Q x Q, on a (B, H, W) image (checked to fit).
inline PasteTiles bin_windows(const at::Tensor& coords, const at::Tensor& order, int64_t B, int64_t H, int64_t W,
                              int64_t Q, int64_t scale) {
  constexpr int64_t TH = sr_cuda::kPasteTileH, TW = sr_cuda::kPasteTileW;
  PasteTiles t;
  t.tiles_y = (H + TH - 1) / TH;
  t.tiles_x = (W + TW - 1) / TW;
  const int64_t n_tiles = B * t.tiles_y * t.tiles_x, ky = (Q - 1) / TH + 2, kx = (Q - 1) / TW + 2;
  const int64_t N = order.size(0);
  TORCH_CHECK_VALUE(n_tiles < std::numeric_limits<int32_t>::max() && N * ky * kx < std::numeric_limits<int32_t>::max(),
                    "the paste's tile index must fit int32, got ", n_tiles, " tiles and ", N * ky * kx, " entries");
  const at::Tensor sel = coords.index_select(0, order);
  const at::Tensor b = sel.select(1, 0), wy = sel.select(1, 1) * scale, wx = sel.select(1, 2) * scale;
  const auto opts = coords.options();
  const at::Tensor ty = wy.div(TH, "floor").view({-1, 1, 1}) + at::arange(ky, opts).view({1, -1, 1});
  const at::Tensor tx = wx.div(TW, "floor").view({-1, 1, 1}) + at::arange(kx, opts).view({1, 1, -1});
  const at::Tensor hit =
      ty.le((wy + (Q - 1)).div(TH, "floor").view({-1, 1, 1})) & tx.le((wx + (Q - 1)).div(TW, "floor").view({-1, 1, 1}));
  // A miss takes the key past the last tile, so it sorts last.
  const at::Tensor tile = (b.view({-1, 1, 1}) * t.tiles_y + ty) * t.tiles_x + tx;
  const at::Tensor key = at::where(hit, tile, n_tiles).to(at::kInt).flatten();
  const auto [sorted, perm] = at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  t.win = perm.div(ky * kx, "floor").to(at::kInt).contiguous();
  t.start = at::searchsorted(sorted, at::arange(n_tiles + 1, opts.dtype(at::kInt)), /*out_int32=*/true);
  t.wy = wy.to(at::kInt).contiguous();
  t.wx = wx.to(at::kInt).contiguous();
  return t;
}

}  // namespace sr_glue
