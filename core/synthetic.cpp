#include "core/synthetic.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace msa {
namespace {

// splitmix64 + Box-Muller: the same numbers on every platform.
class Normal {
public:
    explicit Normal(uint64_t seed) : state_(seed) {}
    uint64_t bits() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (bits() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform(), u2 = uniform();
        double r = std::sqrt(-2.0 * std::log(1.0 - u1));
        spare_ = r * std::sin(2 * M_PI * u2);
        has_spare_ = true;
        return r * std::cos(2 * M_PI * u2);
    }
    int below(int n) { return static_cast<int>(bits() % static_cast<uint64_t>(n)); }

private:
    uint64_t state_;
    double spare_ = 0;
    bool has_spare_ = false;
};

void fill_normal(std::vector<float>& v, Normal& rng, double scale = 1.0) {
    for (float& x : v) x = static_cast<float>(rng.normal() * scale);
}

void make_concentrated(SyntheticAttention& s, Normal& rng) {
    const SyntheticOptions& o = s.options;
    const AttentionShape& sh = o.shape;
    const int n = sh.n_tokens, d = sh.head_dim, r = sh.group_size();
    const double sqrt_d = std::sqrt(static_cast<double>(d));
    // Target logit = alpha * beta * weight (unit directions), split evenly
    // between the key's magnitude and the query's.
    const double alpha = std::sqrt(o.strength), beta = std::sqrt(o.strength);
    std::vector<double> weights;
    double weight_norm2 = 0;
    for (int i = 0; i < o.targets_per_query; ++i) {
        weights.push_back(std::pow(o.decay, i));
        weight_norm2 += weights.back() * weights.back();
    }
    // Weak keys: i.i.d. normal scaled so that their logits against a full
    // query have standard deviation background_std.
    const double weak_scale = o.background_std * sqrt_d / (beta * std::sqrt(std::max(weight_norm2, 1e-12)));

    std::vector<double> direction(d);
    for (int g = 0; g < sh.n_kv_heads; ++g) {
        std::vector<int> strong;                        // positions, ascending
        std::vector<std::vector<double>> strong_dirs;   // unit vectors
        for (int j = 0; j < n; ++j) {
            float* key = s.k.data() + (static_cast<size_t>(j) * sh.n_kv_heads + g) * d;
            if (rng.uniform() < o.strong_fraction) {
                double norm2 = 0;
                for (int c = 0; c < d; ++c) {
                    direction[c] = rng.normal();
                    norm2 += direction[c] * direction[c];
                }
                const double inv = 1.0 / std::sqrt(norm2);
                for (int c = 0; c < d; ++c) direction[c] *= inv;
                for (int c = 0; c < d; ++c) key[c] = static_cast<float>(alpha * sqrt_d * direction[c]);
                strong.push_back(j);
                strong_dirs.push_back(direction);
            } else {
                for (int c = 0; c < d; ++c) key[c] = static_cast<float>(rng.normal() * weak_scale);
            }
        }
        size_t visible_strong = 0;
        std::vector<int> chosen;
        std::vector<double> query(d);
        for (int t = 0; t < n; ++t) {
            while (visible_strong < strong.size() && strong[visible_strong] <= t) ++visible_strong;
            // Pick distinct targets among the strong keys visible to t.
            chosen.clear();
            const int m = static_cast<int>(std::min<size_t>(o.targets_per_query, visible_strong));
            while (static_cast<int>(chosen.size()) < m) {
                int idx = rng.below(static_cast<int>(visible_strong));
                if (std::find(chosen.begin(), chosen.end(), idx) == chosen.end()) chosen.push_back(idx);
            }
            std::fill(query.begin(), query.end(), 0.0);
            for (int i = 0; i < m; ++i)
                for (int c = 0; c < d; ++c) query[c] += beta * weights[i] * strong_dirs[chosen[i]][c];
            if (m == 0)  // nothing to attend to yet: a random query of the same scale
                for (int c = 0; c < d; ++c) query[c] = beta * rng.normal() / sqrt_d;
            // The group's heads share the query up to a little per-head noise,
            // as GQA heads of one group roughly do.
            for (int h = g * r; h < (g + 1) * r; ++h) {
                float* q = s.q.data() + (static_cast<size_t>(t) * sh.n_heads + h) * d;
                for (int c = 0; c < d; ++c) q[c] = static_cast<float>(query[c] + 0.05 * beta * rng.normal() / sqrt_d);
            }
        }
    }
    fill_normal(s.v, rng);
}

}  // namespace

const char* to_string(SyntheticKind kind) { return kind == SyntheticKind::concentrated ? "concentrated" : "noise"; }

SyntheticKind parse_synthetic_kind(const std::string& name) {
    if (name == "concentrated") return SyntheticKind::concentrated;
    if (name == "noise") return SyntheticKind::noise;
    throw InputError("unknown synthetic input '" + name + "' (expected concentrated or noise)");
}

SyntheticAttention make_synthetic_attention(const SyntheticOptions& options) {
    const AttentionShape& sh = options.shape;
    if (sh.n_tokens < 1 || sh.n_heads < 1 || sh.n_kv_heads < 1 || sh.head_dim < 1 || sh.n_heads % sh.n_kv_heads != 0)
        throw InputError("synthetic attention: bad shape (tokens " + std::to_string(sh.n_tokens) + ", heads " +
                         std::to_string(sh.n_heads) + "/" + std::to_string(sh.n_kv_heads) + ", dim " +
                         std::to_string(sh.head_dim) + ")");
    if (options.kind == SyntheticKind::concentrated &&
        (options.targets_per_query < 1 || !(options.strong_fraction > 0 && options.strong_fraction <= 1) ||
         !(options.decay > 0) || !(options.strength > 0) || !(options.background_std >= 0)))
        throw InputError("synthetic attention: concentrated inputs need targets >= 1, 0 < strong fraction <= 1, "
                         "decay > 0, strength > 0, background std >= 0");
    SyntheticAttention s;
    s.options = options;
    s.q.resize(static_cast<size_t>(sh.n_tokens) * sh.n_heads * sh.head_dim);
    s.k.resize(static_cast<size_t>(sh.n_tokens) * sh.n_kv_heads * sh.head_dim);
    s.v.resize(s.k.size());
    Normal rng(options.seed * 0x9e3779b97f4a7c15ull + (options.kind == SyntheticKind::noise ? 17 : 29));
    if (options.kind == SyntheticKind::noise) {
        fill_normal(s.q, rng);
        fill_normal(s.k, rng);
        fill_normal(s.v, rng);
    } else {
        make_concentrated(s, rng);
    }
    return s;
}

SyntheticMeasure measure_synthetic(const SyntheticAttention& input, const MsaConfig& config, int threads) {
    if (config.k < 1 || config.block < 1 || (config.sink != 0 && config.sink != 1))
        throw InputError("synthetic measure: k and block must be >= 1 and sink 0 or 1");
    const QKV qkv = input.qkv();
    const AttentionShape& sh = qkv.shape;
    const size_t out_size = static_cast<size_t>(sh.n_tokens) * sh.n_heads * sh.head_dim;
    std::vector<float> sparse_out(out_size), dense_out(out_size);
    IndexInputs index = free_index_inputs(qkv);
    MsaLayerOutput layer = msa_attention(qkv, index, config, sparse_out.data(), threads, false);
    dense_attention(qkv, dense_out.data(), threads);
    BlockMass mass = dense_block_mass(qkv, config.block, threads);
    std::vector<float> recall = attention_recall(mass, layer.selection, sh.group_size());

    SyntheticMeasure m;
    double sum = 0;
    for (float x : recall) sum += x;
    m.recall_mean = recall.empty() ? 0 : sum / recall.size();
    m.recall_p5 = quantile(recall, 0.05);
    m.output_rel_error = relative_error(sparse_out.data(), dense_out.data(), out_size);

    // A uniform pick keeps the forced blocks and, in expectation, a
    // (k - forced) / (visible - forced) share of the rest of the mass.
    double uniform_sum = 0;
    for (int t = 0; t < sh.n_tokens; ++t) {
        const int local = t / config.block;
        const int visible = local + 1;
        const int forced = forced_block_count(local, config.sink);
        for (int h = 0; h < sh.n_heads; ++h) {
            const float* row = mass.row(t, h);
            if (visible <= config.k) {
                double all = 0;
                for (int b = 0; b < visible; ++b) all += row[b];
                uniform_sum += all;
                continue;
            }
            double forced_mass = row[local] + (forced == 2 ? row[0] : 0.0);
            double rest = 0;
            for (int b = 0; b < visible; ++b) rest += row[b];
            rest -= forced_mass;
            const int free_slots = std::max(0, config.k - forced);
            uniform_sum += forced_mass + rest * free_slots / (visible - forced);
        }
    }
    m.uniform_recall = uniform_sum / (static_cast<double>(sh.n_tokens) * sh.n_heads);
    return m;
}

}  // namespace msa
