// class_dispatch: class of each patch (argmax of its logits, first maximum on ties, a NaN
// counting as the maximum as torch.argmax does), then a stable counting sort by class.
#pragma once

#include "kernels/common.h"
#include "kernels/convert.h"

namespace sr {

template <typename T, typename Acc>
SR_HOST_DEVICE int64_t row_argmax(const T* row, int64_t K) {
  int64_t best = 0;
  Acc v0 = sr_cast<Acc>(row[0]);
  bool best_nan = v0 != v0;
  for (int64_t k = 1; k < K && !best_nan; ++k) {
    const Acc v = sr_cast<Acc>(row[k]);
    if (v != v) {
      best = k;
      best_nan = true;
    } else if (v > v0) {
      best = k;
      v0 = v;
    }
  }
  return best;
}

}  // namespace sr
