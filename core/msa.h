#pragma once
// The MSA engine on the CPU: the reference every CUDA op is tested against and
// the backend `--backend cpu` runs. Semantics: ../shared/DESIGN.md "MSA, precisely".
//
// Layouts (row-major float32):
//   Q [N, Hq, d], K [N, Hkv, d], V [N, Hkv, d], out [N, Hq, d]
//   GQA group g owns query heads g*r .. g*r+r-1, r = Hq / Hkv.
// Nothing here materializes N x N token scores: work streams over key blocks.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace msa {

enum class Scorer { max, mean, quest, random };
enum class IndexKind { free, trained };

const char* to_string(Scorer s);
const char* to_string(IndexKind k);
Scorer parse_scorer(const std::string& s);       // throws InputError
IndexKind parse_index_kind(const std::string& s);  // throws InputError

struct MsaConfig {
    int k = 16;            // blocks kept per query and group (forced ones included)
    int block = 128;       // B, tokens per key block
    Scorer scorer = Scorer::max;
    int sink = 0;          // 1: block 0 is forced as well as the local block
    IndexKind index = IndexKind::free;
    uint64_t seed = 0x5eedull;  // for Scorer::random
};

// Number of forced blocks for a query whose local block is `local`.
inline int forced_block_count(int local, int sink) { return (sink && local > 0) ? 2 : 1; }
// k <= forced leaves no free slot: the caller should warn the user.
inline bool budget_has_free_slot(const MsaConfig& c) { return c.k > (c.sink ? 2 : 1); }

struct AttentionShape {
    int n_tokens = 0;
    int n_heads = 0;      // Hq
    int n_kv_heads = 0;   // Hkv = number of GQA groups
    int head_dim = 0;     // d
    int group_size() const { return n_heads / n_kv_heads; }
    int n_blocks(int block) const { return (n_tokens + block - 1) / block; }
};

struct QKV {
    const float* q = nullptr;
    const float* k = nullptr;
    const float* v = nullptr;
    AttentionShape shape;
};

// Index-branch inputs. q: [N, G, dim]; k: [N, n_key_heads, dim] with
// n_key_heads == G (training-free: key head g serves group g) or 1 (trained:
// one key head shared by all groups). score = q . k * scale.
struct IndexInputs {
    int n_tokens = 0;
    int n_groups = 0;
    int n_key_heads = 0;
    int dim = 0;
    float scale = 1.0f;
    std::vector<float> q;
    std::vector<float> k;
};

// Training-free index: q_idx[t,g] = mean over the group's query heads, k_idx = K, scale 1/sqrt(d).
IndexInputs free_index_inputs(const QKV& qkv);

// Block scores S[t, g, b]; -inf for blocks the query cannot see (b > t/B).
struct BlockScores {
    int n_tokens = 0;
    int n_groups = 0;
    int n_blocks = 0;
    std::vector<float> values;  // [N, G, nb]
    float at(int t, int g, int b) const {
        return values[(static_cast<size_t>(t) * n_groups + g) * n_blocks + b];
    }
    const float* row(int t, int g) const {
        return values.data() + (static_cast<size_t>(t) * n_groups + g) * n_blocks;
    }
};

// Pools token scores s[t,j,g] (keys j > t masked before pooling, also inside
// the local block) into block scores. random: a deterministic hash of
// (seed, t, g, b) in [0,1), independent of the inputs.
BlockScores score_blocks(const IndexInputs& index, int block, Scorer scorer, uint64_t seed, int threads = 1);

// Per query and group, the kept block ids in ascending order, -1 padding after.
struct Selection {
    int n_tokens = 0;
    int n_groups = 0;
    int slots = 0;                // max(k, forced) : row width
    std::vector<int32_t> blocks;  // [N, G, slots]
    const int32_t* row(int t, int g) const {
        return blocks.data() + (static_cast<size_t>(t) * n_groups + g) * slots;
    }
    int32_t* row(int t, int g) { return blocks.data() + (static_cast<size_t>(t) * n_groups + g) * slots; }
    int count(int t, int g) const;  // number of valid (non -1) entries
};

// Top-k: forced blocks (local, plus block 0 when sink = 1) always kept; the
// remaining k - forced slots go to the best other visible blocks by score, ties
// to the lower block id. A query that sees <= k blocks keeps all of them. When
// k < forced, the forced blocks are still all kept (selection size = forced).
Selection select_blocks(const BlockScores& scores, int k, int sink, int block);

// Main branch: for each head of a group, exact softmax attention over the keys
// of the group's selected blocks, token-level causal mask, scale 1/sqrt(d).
// Blocks are visited in ascending id so that selecting every visible block
// reproduces dense_attention bit for bit.
void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out, int threads = 1);

// Ordinary causal GQA attention.
void dense_attention(const QKV& qkv, float* out, int threads = 1);

// Dense softmax probability mass per key block: [N, Hq, nb] (0 beyond visible).
struct BlockMass {
    int n_tokens = 0;
    int n_heads = 0;
    int n_blocks = 0;
    std::vector<float> values;
    const float* row(int t, int h) const {
        return values.data() + (static_cast<size_t>(t) * n_heads + h) * n_blocks;
    }
};
BlockMass dense_block_mass(const QKV& qkv, int block, int threads = 1);

// Attention-mass recall per (query, head): dense mass on the selected blocks. [N, Hq]
std::vector<float> attention_recall(const BlockMass& mass, const Selection& selection, int group_size);

// ||a - b|| / ||b|| (0 when both are zero), in double.
double relative_error(const float* a, const float* b, size_t n);

// Quantile (0..1) of a copy of v (linear interpolation); NaN for empty.
double quantile(std::vector<float> v, double q);

// Index + select + main branch in one call: what the forward runs per layer in MSA mode.
struct MsaLayerOutput {
    BlockScores scores;     // kept only if keep_scores
    Selection selection;
};
MsaLayerOutput msa_attention(const QKV& qkv, const IndexInputs& index, const MsaConfig& config, float* out,
                             int threads = 1, bool keep_scores = false);

}  // namespace msa
