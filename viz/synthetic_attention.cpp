#include "viz/synthetic_attention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "core/flops.h"

namespace msa::viz {
namespace {

// Words of each topic: token id = topic * kWordsPerTopic + word.
constexpr int kWordsPerTopic = 6;
const char* const kTopicWords[][kWordsPerTopic] = {
    {"river", "bank", "delta", "flood", "ferry", "shore"},   {"violin", "cello", "sonata", "bow", "tempo", "chord"},
    {"orbit", "comet", "rocket", "lunar", "probe", "apogee"}, {"bread", "yeast", "oven", "crust", "dough", "flour"},
    {"falcon", "nest", "talon", "feather", "glide", "prey"}, {"ledger", "audit", "invoice", "tax", "credit", "fiscal"},
    {"glacier", "ice", "fjord", "frost", "crevasse", "moraine"}, {"chess", "bishop", "gambit", "pawn", "rook", "check"},
    {"copper", "wire", "volt", "ohm", "circuit", "diode"},   {"tomato", "basil", "garlic", "olive", "pasta", "sauce"},
    {"lighthouse", "beacon", "reef", "harbor", "lantern", "tide"}, {"kernel", "warp", "thread", "cache", "tensor", "stream"},
    {"desert", "dune", "oasis", "camel", "mirage", "sand"},  {"castle", "moat", "tower", "siege", "knight", "gate"},
    {"poem", "verse", "rhyme", "stanza", "meter", "ode"},    {"vaccine", "virus", "cell", "dose", "immune", "trial"},
    {"train", "rail", "station", "ticket", "platform", "depot"}, {"coffee", "bean", "roast", "espresso", "crema", "grind"},
    {"volcano", "lava", "magma", "ash", "crater", "vent"},   {"garden", "rose", "soil", "seed", "bloom", "hedge"},
    {"market", "stall", "vendor", "price", "barter", "crowd"}, {"robot", "servo", "sensor", "gripper", "motor", "arm"},
    {"whale", "krill", "sonar", "pod", "breach", "fluke"},   {"winter", "snow", "sled", "scarf", "hearth", "blizzard"},
};
constexpr int kTopicCount = static_cast<int>(sizeof kTopicWords / sizeof kTopicWords[0]);

struct Region {
    int begin = 0, end = 0;
    int topic = 0;
};

std::vector<Region> make_regions(int n_tokens, int n_topics, std::mt19937_64& rng) {
    std::vector<Region> regions;
    std::uniform_int_distribution<int> length(32, 192), topic(0, n_topics - 1);
    for (int t = 0; t < n_tokens;) {
        Region r;
        r.begin = t;
        r.end = std::min(n_tokens, t + length(rng));
        r.topic = topic(rng);
        if (!regions.empty() && regions.back().topic == r.topic) r.topic = (r.topic + 1) % n_topics;
        regions.push_back(r);
        t = r.end;
    }
    return regions;
}

}  // namespace

std::string synthetic_token_text(int id) {
    if (id < 0 || id >= kTopicCount * kWordsPerTopic) return " ?";
    return std::string(" ") + kTopicWords[id / kWordsPerTopic][id % kWordsPerTopic];
}

RunResult synthetic_run(const SyntheticOptions& o) {
    using clock = std::chrono::steady_clock;
    auto ms_since = [](clock::time_point a) { return std::chrono::duration<double, std::milli>(clock::now() - a).count(); };
    RunResult run;
    run.model_path = "synthetic";
    run.model_format = "synthetic";
    run.model_hash = "synthetic-seed-" + std::to_string(o.seed);
    run.model_config.arch = "synthetic";
    run.model_config.n_layers = o.n_layers;
    run.model_config.n_heads = o.n_heads;
    run.model_config.n_kv_heads = o.n_kv_heads;
    run.model_config.head_dim = o.head_dim;
    run.model_config.hidden = o.n_heads * o.head_dim;
    run.model_config.context_length = o.n_tokens;
    run.config = o.config;
    run.backend = "cpu";
    run.device = "CPU (synthetic attention)";
    run.threads = o.threads;
    run.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();

    const int N = o.n_tokens, Hq = o.n_heads, G = o.n_kv_heads, d = o.head_dim, r = Hq / G;
    // Topic axes use dimensions [0, n_topics); the last dimension is the sink axis.
    const int n_topics = std::max(2, std::min(kTopicCount, d - 1));
    const int sink_dim = d - 1;
    std::mt19937_64 rng(o.seed);
    std::vector<Region> regions = make_regions(N, n_topics, rng);
    std::vector<int> topic_of(N);
    for (const Region& reg : regions)
        for (int t = reg.begin; t < reg.end; ++t) topic_of[t] = reg.topic;

    // Text: each token a word of its topic.
    run.tokens.resize(N);
    {
        std::uniform_int_distribution<int> word(0, kWordsPerTopic - 1);
        for (int t = 0; t < N; ++t) {
            run.tokens[t] = topic_of[t] * kWordsPerTopic + word(rng);
            run.text += synthetic_token_text(run.tokens[t]);
        }
    }

    AttentionShape shape{N, Hq, G, d};
    std::normal_distribution<float> gauss(0.f, 1.f);
    double stage_qkv = 0, stage_index = 0, stage_select = 0, stage_sparse = 0, stage_dense = 0, stage_mass = 0;
    const double total_steps = o.n_layers;
    for (int layer = 0; layer < o.n_layers; ++layer) {
        if (o.progress && !o.progress(layer / total_steps, "layer " + std::to_string(layer)))
            break;
        auto t0 = clock::now();
        // Sharper layers deeper in: logit contrast of a topic-matching key.
        const float contrast = 2.5f + 1.6f * layer;
        std::vector<float> Q(static_cast<size_t>(N) * Hq * d), K(static_cast<size_t>(N) * G * d),
            V(static_cast<size_t>(N) * G * d);
        // Keys: alpha * topic axis + small noise; the first 4 tokens also on the sink axis.
        const float alpha = std::sqrt(static_cast<float>(d)), key_noise = 0.25f;
        for (int j = 0; j < N; ++j)
            for (int g = 0; g < G; ++g) {
                float* k = &K[(static_cast<size_t>(j) * G + g) * d];
                for (int i = 0; i < d; ++i) k[i] = key_noise * gauss(rng);
                k[(topic_of[j] + 5 * g) % n_topics] += alpha;
                if (j < 4) k[sink_dim] += alpha;
                float* v = &V[(static_cast<size_t>(j) * G + g) * d];
                for (int i = 0; i < d; ++i) v[i] = gauss(rng);
            }
        // Queries: per region and group, one earlier topic to retrieve.
        for (size_t ri = 0; ri < regions.size(); ++ri) {
            const Region& reg = regions[ri];
            for (int g = 0; g < G; ++g) {
                int retrieve = topic_of[0];
                if (ri > 0) {
                    std::uniform_int_distribution<size_t> pick(0, ri - 1);
                    retrieve = regions[pick(rng)].topic;
                }
                for (int t = reg.begin; t < reg.end; ++t)
                    for (int hi = 0; hi < r; ++hi) {
                        int h = g * r + hi;
                        // Heads of a group split their weight differently between recency and retrieval.
                        float w_retrieve = 0.55f + 0.45f * static_cast<float>(hi) / std::max(1, r - 1);
                        float w_local = 1.2f - w_retrieve;
                        float beta = contrast * std::sqrt(static_cast<float>(d)) / alpha;  // logit = beta*alpha/sqrt(d)
                        float* q = &Q[(static_cast<size_t>(t) * Hq + h) * d];
                        for (int i = 0; i < d; ++i) q[i] = 0.3f * gauss(rng);
                        q[(reg.topic + 5 * g) % n_topics] += beta * w_local;
                        q[(retrieve + 5 * g) % n_topics] += beta * w_retrieve;
                        q[sink_dim] += beta * 0.35f;
                    }
            }
        }
        stage_qkv += ms_since(t0);

        QKV qkv{Q.data(), K.data(), V.data(), shape};
        LayerCapture cap;
        cap.layer = layer;
        auto t1 = clock::now();
        IndexInputs index = free_index_inputs(qkv);
        cap.scores = score_blocks(index, o.config.block, o.config.scorer, o.config.seed, o.threads);
        stage_index += ms_since(t1);
        auto t2 = clock::now();
        cap.selection = select_blocks(cap.scores, o.config.k, o.config.sink, o.config.block);
        stage_select += ms_since(t2);
        auto t3 = clock::now();
        std::vector<float> out_sparse(Q.size()), out_dense(Q.size());
        sparse_attention(qkv, cap.selection, o.config.block, out_sparse.data(), o.threads);
        stage_sparse += ms_since(t3);
        auto t4 = clock::now();
        dense_attention(qkv, out_dense.data(), o.threads);
        stage_dense += ms_since(t4);
        auto t5 = clock::now();
        cap.mass = dense_block_mass(qkv, o.config.block, o.threads);
        cap.recall = attention_recall(cap.mass, cap.selection, r);
        stage_mass += ms_since(t5);

        LayerResult lr;
        lr.layer = layer;
        lr.output_rel_error = relative_error(out_sparse.data(), out_dense.data(), out_sparse.size());
        lr.head_rel_error.resize(Hq);
        for (int h = 0; h < Hq; ++h) {
            std::vector<float> a, b;
            a.reserve(static_cast<size_t>(N) * d);
            b.reserve(static_cast<size_t>(N) * d);
            for (int t = 0; t < N; ++t) {
                size_t off = (static_cast<size_t>(t) * Hq + h) * d;
                a.insert(a.end(), out_sparse.begin() + off, out_sparse.begin() + off + d);
                b.insert(b.end(), out_dense.begin() + off, out_dense.begin() + off + d);
            }
            lr.head_rel_error[h] = relative_error(a.data(), b.data(), a.size());
        }
        lr.recall_mean = 0;
        lr.head_recall_mean.assign(Hq, 0.0);
        for (int t = 0; t < N; ++t)
            for (int h = 0; h < Hq; ++h) lr.head_recall_mean[h] += cap.recall[static_cast<size_t>(t) * Hq + h];
        for (int h = 0; h < Hq; ++h) {
            lr.head_recall_mean[h] /= N;
            lr.recall_mean += lr.head_recall_mean[h] / Hq;
        }
        lr.group_recall_mean.assign(G, 0.0);
        for (int h = 0; h < Hq; ++h) lr.group_recall_mean[h / r] += lr.head_recall_mean[h] / r;
        lr.recall_p5 = quantile(cap.recall, 0.05);
        lr.recall_p50 = quantile(cap.recall, 0.50);
        run.layers.push_back(lr);

        if (o.keep_qkv) {
            cap.q = std::move(Q);
            cap.k = std::move(K);
            cap.v = std::move(V);
            cap.qkv_shape = shape;
        }
        run.captures.push_back(std::move(cap));
    }
    const int done = static_cast<int>(run.layers.size());
    run.dense_attention_flops = done * dense_attention_flops(N, Hq, d);
    run.msa_attention_flops = done * (index_flops(N, G, d) + sparse_attention_flops(N, Hq, d, o.config.k, o.config.block));
    run.timings = {{"synthetic Q/K/V", stage_qkv}, {"index + pooling", stage_index}, {"top-k select", stage_select},
                   {"sparse attention", stage_sparse}, {"dense attention", stage_dense},
                   {"dense block mass + recall", stage_mass}};
    if (!budget_has_free_slot(o.config))
        run.warnings.push_back("k = " + std::to_string(o.config.k) +
                               " leaves no free slot after the forced blocks: retrieval is off");
    run.finished_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
    if (o.progress) o.progress(1.0, "done");
    return run;
}

}  // namespace msa::viz
