#include "core/backend.h"

namespace msa {
namespace {

class CpuBackend final : public ComputeBackend {
public:
    std::string name() const override { return "cpu"; }
    std::string device() const override { return "cpu"; }

    ForwardResult forward(const Model& model, const std::vector<int>& tokens,
                          const ForwardOptions& options) const override {
        return msa::forward(model, tokens, options);
    }
    void dense_attention(const QKV& qkv, float* out, int threads) const override {
        msa::dense_attention(qkv, out, threads);
    }
    Selection select_blocks(const IndexInputs& index, const MsaConfig& config, BlockScores* scores,
                            int threads) const override {
        BlockScores s = score_blocks(index, config.block, config.scorer, config.seed, threads);
        Selection selection = msa::select_blocks(s, config.k, config.sink, config.block);
        if (scores) *scores = std::move(s);
        return selection;
    }
    void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out,
                          int threads) const override {
        msa::sparse_attention(qkv, selection, block, out, threads);
    }
};

}  // namespace

const ComputeBackend& cpu_backend() {
    static const CpuBackend backend;
    return backend;
}

}  // namespace msa
