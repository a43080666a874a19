#include "ops/add/add.h"

namespace tide {

// f64 then one rounding: the correctly rounded y + alpha * x.
void AddRef(const AddParams& p) {
  for (int64_t i = 0; i < p.n; ++i) {
    p.y[i] = static_cast<float>(static_cast<double>(p.y[i]) +
                                static_cast<double>(p.alpha) * static_cast<double>(p.x[i]));
  }
}

}  // namespace tide
