#pragma once
// The whole model on the CPU: embeddings -> N x (RMSNorm, attention, RMSNorm,
// SwiGLU) -> RMSNorm -> logits. Multi-threaded, float32 accumulation.
// Attention is a hook so the MSA engine (or a GPU backend) can replace it per
// layer while everything else stays the same.
#include <functional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/msa.h"

namespace msa {

// Called once per layer with Q, K, V after RoPE; must write out [N, Hq, d].
// `index` is non-null only for models with trained index weights.
using AttentionFn = std::function<void(int layer, const QKV& qkv, const IndexInputs* index, float* out)>;

// fraction in [0,1]; return false to cancel (forward then returns with cancelled = true).
using ProgressFn = std::function<bool(double fraction, const std::string& stage)>;

struct ForwardOptions {
    int threads = 1;
    AttentionFn attention;     // empty: dense causal attention
    ProgressFn progress;
    bool keep_logits = false;  // keep [N, vocab] logits (tests, small N)
};

struct ForwardResult {
    std::vector<float> nll;     // [N-1]: -log p(tokens[t+1] | tokens[..t])
    std::vector<int> argmax;    // [N]: greedy next token after position t
    std::vector<float> logits;  // [N, vocab] only with keep_logits
    bool cancelled = false;
    double perplexity() const;  // exp(mean nll); NaN when N < 2
};

// InputError unless every weight has the shape the config implies and every
// token id is in the vocabulary: every backend's forward calls it first, so all
// refuse the same inputs with the same words.
void validate_forward_inputs(const Model& model, const std::vector<int>& tokens);

ForwardResult forward(const Model& model, const std::vector<int>& tokens, const ForwardOptions& options);

// Greedy decoding of up to max_new tokens after the prompt (re-runs the prefix;
// fine for short answers in the needle study). Uses the same attention hook.
// Returns the new tokens only; stops before stop_token (which is not included)
// and on cancellation (the tokens made so far).
std::vector<int> generate_greedy(const Model& model, const std::vector<int>& prompt, int max_new,
                                 const ForwardOptions& options, int stop_token = -1);

}  // namespace msa
