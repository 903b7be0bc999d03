#include "core/rope.h"

#include <cmath>
#include <string>

#include "core/errors.h"

namespace msa {

std::vector<double> rope_inv_freq(const ModelConfig& c, int dim) {
    std::vector<double> f(dim / 2);
    for (int i = 0; i < dim / 2; ++i) f[i] = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / dim);
    const RopeScaling& s = c.rope_scaling;
    if (s.type == "none" || s.type.empty()) return f;
    if (!(s.factor > 0)) throw InputError("rope scaling factor must be positive, got " + std::to_string(s.factor));
    if (s.type == "linear") {
        // positions / factor is the same angle as inv_freq / factor.
        for (double& v : f) v /= s.factor;
        return f;
    }
    if (s.type == "llama3") {
        // Wavelengths shorter than original_context / high_freq_factor keep their
        // frequency, longer than original_context / low_freq_factor are divided by
        // factor, and the band between blends the two linearly in
        // original_context / wavelength.
        const double two_pi = 6.283185307179586;
        const double low_wavelen = s.original_context / static_cast<double>(s.low_freq_factor);
        const double high_wavelen = s.original_context / static_cast<double>(s.high_freq_factor);
        for (double& v : f) {
            const double wavelen = two_pi / v;
            if (wavelen < high_wavelen) continue;
            if (wavelen > low_wavelen) {
                v /= s.factor;
                continue;
            }
            const double smooth = (s.original_context / wavelen - s.low_freq_factor) /
                                  (static_cast<double>(s.high_freq_factor) - s.low_freq_factor);
            v = (1.0 - smooth) * v / s.factor + smooth * v;
        }
        return f;
    }
    throw InputError("unsupported rope scaling type '" + s.type + "' (none, linear, llama3)");
}

// Angles in double: at position 8191 and the highest frequency a float angle
// would already be off by ~5e-4 rad.
RopeTable make_rope_table(const ModelConfig& c, int dim, int n_tokens) {
    RopeTable t;
    t.half = dim / 2;
    const std::vector<double> inv = rope_inv_freq(c, dim);
    t.cos.resize(static_cast<size_t>(n_tokens) * t.half);
    t.sin.resize(t.cos.size());
    for (int p = 0; p < n_tokens; ++p)
        for (int i = 0; i < t.half; ++i) {
            const double a = p * inv[i];
            t.cos[static_cast<size_t>(p) * t.half + i] = static_cast<float>(std::cos(a));
            t.sin[static_cast<size_t>(p) * t.half + i] = static_cast<float>(std::sin(a));
        }
    return t;
}

}  // namespace msa
