#pragma once
// RoPE frequencies and cos/sin tables, shared by the CPU forward and the CUDA
// forward so both rotate by exactly the same angles. Hugging Face rotate_half
// convention: in a rotated span of `dim` floats, element i pairs with i + dim/2
// and both turn by pos * inv_freq[i].
#include <vector>

#include "core/model.h"

namespace msa {

// theta^(-2i/dim), then linear or llama3 scaling, in double. InputError for
// an unknown scaling type or a non-positive factor.
std::vector<double> rope_inv_freq(const ModelConfig& c, int dim);

// cos/sin per position and frequency, [n][dim/2] each.
struct RopeTable {
    int half = 0;
    std::vector<float> cos, sin;
};
RopeTable make_rope_table(const ModelConfig& c, int dim, int n_tokens);

}  // namespace msa
