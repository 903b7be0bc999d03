// Host API of the CUDA engine (cuda_attention.h): uploads, launches, downloads,
// the benchmark harness, and the analytic cost each launch is tagged with.
#include "kernels/cuda_attention.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "core/errors.h"
#include "kernels/cuda_check.h"
#include "kernels/cupti_collector.h"
#include "kernels/dense_attention.cuh"
#include "kernels/index_topk.cuh"
#include "kernels/sparse_attention.cuh"

namespace msa::cuda {

using kern::bf16;

// ---- availability ----------------------------------------------------------------
DeviceInfo device_info() {
    DeviceInfo info;
    int driver = 0;
    cudaError_t e = cudaDriverGetVersion(&driver);
    if (e != cudaSuccess || driver == 0) {
        info.reason = "no CUDA driver (" + std::string(e == cudaSuccess ? "driver version 0" : cudaGetErrorString(e)) + ")";
        return info;
    }
    int count = 0;
    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        info.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
        cudaGetLastError();
        return info;
    }
    if (count == 0) {
        info.reason = "no CUDA device";
        return info;
    }
    cudaDeviceProp prop{};
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
        info.reason = std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(e);
        return info;
    }
    info.name = prop.name;
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    info.memory_bytes = prop.totalGlobalMem;
    if (prop.major < 8) {
        info.reason = info.name + " is sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                      "; the kernels need sm_80 or newer (bf16 mma.sync)";
        return info;
    }
    // A context must actually come up (e.g. a driver older than the runtime fails here).
    e = cudaFree(nullptr);
    if (e != cudaSuccess) {
        info.reason = std::string("CUDA context: ") + cudaGetErrorString(e);
        return info;
    }
    info.available = true;
    return info;
}

bool cuda_available(std::string* reason) {
    static const DeviceInfo info = device_info();
    if (reason) *reason = info.available ? info.name : info.reason;
    return info.available;
}

// ---- buffers --------------------------------------------------------------------
DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) MSA_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}
DeviceBuffer::~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        if (ptr_) cudaFree(ptr_);
        ptr_ = o.ptr_;
        bytes_ = o.bytes_;
        o.ptr_ = nullptr;
        o.bytes_ = 0;
    }
    return *this;
}
void DeviceBuffer::upload(const void* src, size_t bytes, size_t offset) {
    if (offset + bytes > bytes_) throw std::runtime_error("DeviceBuffer::upload past the end");
    if (bytes) MSA_CUDA_CHECK(cudaMemcpy(static_cast<char*>(ptr_) + offset, src, bytes, cudaMemcpyHostToDevice));
}
void DeviceBuffer::download(void* dst, size_t bytes, size_t offset) const {
    if (offset + bytes > bytes_) throw std::runtime_error("DeviceBuffer::download past the end");
    if (bytes) MSA_CUDA_CHECK(cudaMemcpy(dst, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost));
}
void DeviceBuffer::fill_bytes(int value) {
    if (bytes_) MSA_CUDA_CHECK(cudaMemset(ptr_, value, bytes_));
}
void DeviceBuffer::upload_bf16(const float* src, size_t count) {
    std::vector<bf16> tmp(count);
    for (size_t i = 0; i < count; ++i) tmp[i] = __float2bfloat16_rn(src[i]);
    upload(tmp.data(), count * sizeof(bf16));
}
void DeviceBuffer::download_bf16(float* dst, size_t count) const {
    std::vector<bf16> tmp(count);
    download(tmp.data(), count * sizeof(bf16));
    for (size_t i = 0; i < count; ++i) dst[i] = __bfloat162float(tmp[i]);
}

float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

namespace {
// Output buffer with guard zones (ggml test-backend-ops style): the bytes around
// the output are set to a pattern and checked after the launch, and the output
// itself is poisoned (0xFF: NaN for bf16/float, -1 for ids; 0x7F: a huge id)
// so anything a kernel forgets to write shows up in the result.
class Guarded {
public:
    static constexpr size_t kGuard = 4096;
    static constexpr unsigned char kPattern = 0xA5;
    Guarded(size_t bytes, int poison) : bytes_(bytes), buf_(bytes + 2 * kGuard) {
        MSA_CUDA_CHECK(cudaMemset(buf_.data(), kPattern, buf_.bytes()));
        if (bytes) MSA_CUDA_CHECK(cudaMemset(data(), poison, bytes));
    }
    void* data() const { return static_cast<char*>(buf_.data()) + kGuard; }
    // Throws if a kernel wrote into a guard zone; then copies the output out.
    void finish(void* host, const char* op) const {
        MSA_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<unsigned char> g(kGuard);
        for (int side = 0; side < 2; ++side) {
            buf_.download(g.data(), kGuard, side ? kGuard + bytes_ : 0);
            for (unsigned char c : g)
                if (c != kPattern) throw std::runtime_error(std::string(op) + ": kernel wrote outside its output buffer");
        }
        if (host && bytes_) buf_.download(host, bytes_, kGuard);
    }

private:
    size_t bytes_;
    DeviceBuffer buf_;
};

void to_float(const std::vector<bf16>& in, float* out) {
    for (size_t i = 0; i < in.size(); ++i) out[i] = __bfloat162float(in[i]);
}
}  // namespace

// ---- analytic cost (exact counts for the launch, 2 FLOPs per multiply-add) --------
namespace {
double causal_pairs(long n_q, long q_offset, long n_kv) {  // sum over queries of visible keys
    double s = 0;
    long first = std::min(q_offset + 1, n_kv), last = std::min(q_offset + n_q, n_kv);
    s = static_cast<double>(first + last) * static_cast<double>(last - first + 1) / 2.0;
    return s;
}
double dense_cost(const kern::DenseAttentionOp& op, double* bytes) {
    *bytes = 2.0 * (2.0 * op.n_q * op.n_heads * op.head_dim + 2.0 * op.n_kv * op.n_kv_heads * op.head_dim);
    return 4.0 * op.n_heads * op.head_dim * causal_pairs(op.n_q, op.q_offset, op.n_kv);
}
double index_cost(const kern::IndexTopkOp& op, double* bytes) {
    *bytes = 2.0 * (static_cast<double>(op.n_q) * op.n_groups * op.dim + static_cast<double>(op.n_kv) * op.n_key_heads * op.dim) +
             4.0 * op.n_q * op.n_groups * op.slots;
    const double blocks = std::ceil(static_cast<double>(op.n_kv) / op.block);
    switch (op.pool) {
        // Random scores take no arithmetic on q or k: no FLOPs, or the profile
        // would show a hash kernel at hundreds of TFLOP/s.
        case kern::IndexPool::random: return 0.0;
        // Quest bounds: per (row, block) one max(q*min, q*max) per channel.
        case kern::IndexPool::quest: return 3.0 * op.n_q * op.n_groups * op.dim * blocks;
        default: return 2.0 * op.n_groups * op.dim * causal_pairs(op.n_q, op.q_offset, op.n_kv);
    }
}
double sparse_cost(const kern::SparseAttentionOp& op, double* bytes) {
    // selected keys per query: min(k*B, visible) approximated per query from the budget
    double keys = 0;
    long kb = static_cast<long>(op.slots) * op.block;
    for (long i = 0; i < op.n_q; ++i) keys += std::min<long>(kb, std::min<long>(op.q_offset + i + 1, op.n_kv));
    *bytes = 2.0 * (2.0 * op.n_q * op.n_heads * op.head_dim + 2.0 * op.n_kv * op.n_kv_heads * op.head_dim) +
             4.0 * op.n_q * op.n_kv_heads * op.slots;
    return 4.0 * op.n_heads * op.head_dim * keys;
}

kern::IndexPool pool_of(Scorer s) {
    switch (s) {
        case Scorer::mean: return kern::IndexPool::mean;
        case Scorer::quest: return kern::IndexPool::quest;
        case Scorer::random: return kern::IndexPool::random;
        default: return kern::IndexPool::max;
    }
}

void check_qkv(const QKV& qkv) {
    const AttentionShape& s = qkv.shape;
    if (s.n_tokens < 0 || s.n_heads <= 0 || s.n_kv_heads <= 0 || s.head_dim <= 0 || s.n_heads % s.n_kv_heads)
        throw InputError("cuda attention: bad shape (heads " + std::to_string(s.n_heads) + ", kv heads " +
                         std::to_string(s.n_kv_heads) + ", dim " + std::to_string(s.head_dim) + ")");
}
int slots_for(int k, int sink, int nb) { return std::max(k, (sink && nb > 1) ? 2 : 1); }

void run_dense(kern::DenseAttentionOp op, cudaStream_t stream) {
    DeviceBuffer scratch(kern::dense_attention_scratch_bytes(op));
    op.scratch = scratch.data();
    op.scratch_bytes = scratch.bytes();
    double bytes = 0, flops = dense_cost(op, &bytes);
    LaunchTag tag("dense", "dense_attention", flops, bytes, stream);
    kern::dense_attention_launch(op, stream);
}
void run_sparse(kern::SparseAttentionOp op, DeviceBuffer* scratch_cache, cudaStream_t stream,
                const char* phase = "sparse") {
    size_t need = kern::sparse_attention_scratch_bytes(op);
    DeviceBuffer local;
    DeviceBuffer* scratch = scratch_cache ? scratch_cache : &local;
    if (scratch->bytes() < need) *scratch = DeviceBuffer(need);
    op.scratch = scratch->data();
    op.scratch_bytes = scratch->bytes();
    double bytes = 0, flops = sparse_cost(op, &bytes);
    LaunchTag tag(phase, "sparse_attention", flops, bytes, stream);
    kern::sparse_attention_launch(op, stream);
}
void run_index(kern::IndexTopkOp op, DeviceBuffer* scratch_cache, cudaStream_t stream, const char* phase = "index") {
    size_t need = kern::index_topk_scratch_bytes(op);
    DeviceBuffer local;
    DeviceBuffer* scratch = scratch_cache ? scratch_cache : &local;
    if (scratch->bytes() < need) *scratch = DeviceBuffer(need);
    op.scratch = scratch->data();
    op.scratch_bytes = scratch->bytes();
    double bytes = 0, flops = index_cost(op, &bytes);
    LaunchTag tag(phase, "index_topk", flops, bytes, stream);
    kern::index_topk_launch(op, stream);
}
}  // namespace

// ---- host-array ops ----------------------------------------------------------------
void dense_attention(const QKV& qkv, float* out) {
    check_qkv(qkv);
    const AttentionShape& s = qkv.shape;
    const size_t nq = static_cast<size_t>(s.n_tokens) * s.n_heads * s.head_dim;
    const size_t nk = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
    if (s.n_tokens == 0) return;
    DeviceBuffer q(nq * 2), k(nk * 2), v(nk * 2);
    Guarded o(nq * 2, 0xFF);
    q.upload_bf16(qkv.q, nq);
    k.upload_bf16(qkv.k, nk);
    v.upload_bf16(qkv.v, nk);
    kern::DenseAttentionOp op;
    op.q = static_cast<bf16*>(q.data());
    op.k = static_cast<bf16*>(k.data());
    op.v = static_cast<bf16*>(v.data());
    op.out = static_cast<bf16*>(o.data());
    op.n_q = op.n_kv = s.n_tokens;
    op.n_heads = s.n_heads;
    op.n_kv_heads = s.n_kv_heads;
    op.head_dim = s.head_dim;
    op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
    run_dense(op, nullptr);
    std::vector<bf16> host(nq);
    o.finish(host.data(), "attention");
    to_float(host, out);
}

Selection select_blocks(const IndexInputs& index, const MsaConfig& config, BlockScores* scores_out) {
    if (index.n_tokens < 0 || index.n_groups <= 0 || index.dim <= 0 ||
        (index.n_key_heads != 1 && index.n_key_heads != index.n_groups))
        throw InputError("cuda index: bad index shape");
    if (config.block <= 0 || config.k <= 0 || (config.sink != 0 && config.sink != 1))
        throw InputError("cuda index: k and block must be positive, sink 0 or 1");
    const int N = index.n_tokens, G = index.n_groups, nb = (N + config.block - 1) / config.block;
    Selection sel;
    sel.n_tokens = N;
    sel.n_groups = G;
    sel.slots = slots_for(config.k, config.sink, nb);
    sel.blocks.assign(static_cast<size_t>(N) * G * sel.slots, -1);
    if (N == 0) return sel;
    const bool need_arrays = config.scorer != Scorer::random;
    if (need_arrays && (index.q.size() != static_cast<size_t>(N) * G * index.dim ||
                        index.k.size() != static_cast<size_t>(N) * index.n_key_heads * index.dim))
        throw InputError("cuda index: q/k arrays do not match the index shape");
    DeviceBuffer q(static_cast<size_t>(N) * G * index.dim * 2), k(static_cast<size_t>(N) * index.n_key_heads * index.dim * 2);
    if (need_arrays) {
        q.upload_bf16(index.q.data(), index.q.size());
        k.upload_bf16(index.k.data(), index.k.size());
    } else {
        q.fill_bytes(0);
        k.fill_bytes(0);
    }
    Guarded dsel(sel.blocks.size() * 4, 0x7F);
    Guarded dscores(scores_out ? static_cast<size_t>(N) * G * nb * 4 : 0, 0xFF);
    kern::IndexTopkOp op;
    op.q = static_cast<bf16*>(q.data());
    op.k = static_cast<bf16*>(k.data());
    op.n_q = op.n_kv = N;
    op.n_groups = G;
    op.n_key_heads = index.n_key_heads;
    op.dim = index.dim;
    op.scale = index.scale;
    op.block = config.block;
    op.pool = pool_of(config.scorer);
    op.seed = config.seed;
    op.k_top = config.k;
    op.sink = config.sink;
    op.slots = sel.slots;
    op.sel = static_cast<int32_t*>(dsel.data());
    op.scores = scores_out ? static_cast<float*>(dscores.data()) : nullptr;
    if (op.pool != kern::IndexPool::random && op.dim != 64 && op.dim != 128)
        throw InputError("cuda index: dim " + std::to_string(op.dim) + " not supported (64 or 128)");
    if (op.pool == kern::IndexPool::random) op.dim = 64;  // arrays unused
    run_index(op, nullptr, nullptr);
    dsel.finish(sel.blocks.data(), "index_topk (selection)");
    if (scores_out) {
        scores_out->n_tokens = N;
        scores_out->n_groups = G;
        scores_out->n_blocks = nb;
        scores_out->values.resize(static_cast<size_t>(N) * G * nb);
        dscores.finish(scores_out->values.data(), "index_topk (scores)");
    }
    return sel;
}

namespace {
void check_selection(const int32_t* sel, size_t count, int nb) {
    for (size_t i = 0; i < count; ++i)
        if (sel[i] < -1 || sel[i] >= nb)
            throw InputError("cuda sparse attention: selection holds block " + std::to_string(sel[i]) +
                             ", valid ids are -1 .. " + std::to_string(nb - 1));
}
}  // namespace

void sparse_attention(const QKV& qkv, const Selection& selection, int block, float* out, SparseOrder order) {
    check_qkv(qkv);
    const AttentionShape& s = qkv.shape;
    if (block <= 0) throw InputError("cuda sparse attention: block must be positive");
    if (selection.n_tokens != s.n_tokens || selection.n_groups != s.n_kv_heads || selection.slots <= 0 ||
        selection.blocks.size() != static_cast<size_t>(s.n_tokens) * s.n_kv_heads * selection.slots)
        throw InputError("cuda sparse attention: selection does not match the attention shape");
    if (s.n_tokens == 0) return;
    check_selection(selection.blocks.data(), selection.blocks.size(), s.n_blocks(block));
    const size_t nq = static_cast<size_t>(s.n_tokens) * s.n_heads * s.head_dim;
    const size_t nk = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
    DeviceBuffer q(nq * 2), k(nk * 2), v(nk * 2), dsel(selection.blocks.size() * 4);
    Guarded o(nq * 2, 0xFF);
    q.upload_bf16(qkv.q, nq);
    k.upload_bf16(qkv.k, nk);
    v.upload_bf16(qkv.v, nk);
    dsel.upload(selection.blocks.data(), selection.blocks.size() * 4);
    kern::SparseAttentionOp op;
    op.q = static_cast<bf16*>(q.data());
    op.k = static_cast<bf16*>(k.data());
    op.v = static_cast<bf16*>(v.data());
    op.out = static_cast<bf16*>(o.data());
    op.sel = static_cast<int32_t*>(dsel.data());
    op.slots = selection.slots;
    op.block = block;
    op.n_q = op.n_kv = s.n_tokens;
    op.n_heads = s.n_heads;
    op.n_kv_heads = s.n_kv_heads;
    op.head_dim = s.head_dim;
    op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
    op.order = order;
    run_sparse(op, nullptr, nullptr);
    std::vector<bf16> host(nq);
    o.finish(host.data(), "attention");
    to_float(host, out);
}

void dense_decode(const float* q, const QKV& cache, float* out) {
    check_qkv(cache);
    const AttentionShape& s = cache.shape;
    if (s.n_tokens <= 0) throw InputError("cuda decode: empty cache");
    const size_t nq = static_cast<size_t>(s.n_heads) * s.head_dim;
    const size_t nk = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
    DeviceBuffer dq(nq * 2), k(nk * 2), v(nk * 2);
    Guarded o(nq * 2, 0xFF);
    dq.upload_bf16(q, nq);
    k.upload_bf16(cache.k, nk);
    v.upload_bf16(cache.v, nk);
    kern::DenseAttentionOp op;
    op.q = static_cast<bf16*>(dq.data());
    op.k = static_cast<bf16*>(k.data());
    op.v = static_cast<bf16*>(v.data());
    op.out = static_cast<bf16*>(o.data());
    op.n_q = 1;
    op.q_offset = s.n_tokens - 1;
    op.n_kv = s.n_tokens;
    op.n_heads = s.n_heads;
    op.n_kv_heads = s.n_kv_heads;
    op.head_dim = s.head_dim;
    op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
    run_dense(op, nullptr);
    std::vector<bf16> host(nq);
    o.finish(host.data(), "attention");
    to_float(host, out);
}

std::vector<int32_t> decode_select(const float* q_idx, const IndexInputs& keys, const MsaConfig& config, int* slots,
                                   std::vector<float>* scores_out) {
    const int N = keys.n_tokens, G = keys.n_groups;
    if (N <= 0 || G <= 0 || (keys.n_key_heads != 1 && keys.n_key_heads != G))
        throw InputError("cuda decode index: bad index shape");
    if (config.block <= 0 || config.k <= 0) throw InputError("cuda decode index: k and block must be positive");
    const int nb = (N + config.block - 1) / config.block;
    const int sl = slots_for(config.k, config.sink, nb);
    const bool need_arrays = config.scorer != Scorer::random;
    if (need_arrays && keys.k.size() != static_cast<size_t>(N) * keys.n_key_heads * keys.dim)
        throw InputError("cuda decode index: key array does not match the shape");
    DeviceBuffer q(static_cast<size_t>(G) * keys.dim * 2), k(static_cast<size_t>(N) * keys.n_key_heads * keys.dim * 2);
    if (need_arrays) {
        q.upload_bf16(q_idx, static_cast<size_t>(G) * keys.dim);
        k.upload_bf16(keys.k.data(), keys.k.size());
    } else {
        q.fill_bytes(0);
        k.fill_bytes(0);
    }
    Guarded dsel(static_cast<size_t>(G) * sl * 4, 0x7F), dscores(static_cast<size_t>(G) * nb * 4, 0xFF);
    kern::IndexTopkOp op;
    op.q = static_cast<bf16*>(q.data());
    op.k = static_cast<bf16*>(k.data());
    op.n_q = 1;
    op.q_offset = N - 1;
    op.n_kv = N;
    op.n_groups = G;
    op.n_key_heads = keys.n_key_heads;
    op.dim = need_arrays ? keys.dim : 64;
    op.scale = keys.scale;
    op.block = config.block;
    op.pool = pool_of(config.scorer);
    op.seed = config.seed;
    op.k_top = config.k;
    op.sink = config.sink;
    op.slots = sl;
    op.sel = static_cast<int32_t*>(dsel.data());
    op.scores = static_cast<float*>(dscores.data());
    run_index(op, nullptr, nullptr);
    std::vector<int32_t> sel(static_cast<size_t>(G) * sl);
    dsel.finish(sel.data(), "index_topk decode (selection)");
    std::vector<float> scores(static_cast<size_t>(G) * nb);
    dscores.finish(scores.data(), "index_topk decode (scores)");
    if (scores_out) *scores_out = std::move(scores);
    if (slots) *slots = sl;
    return sel;
}

void sparse_decode(const float* q, const QKV& cache, const int32_t* selection, int slots, int block, float* out) {
    check_qkv(cache);
    const AttentionShape& s = cache.shape;
    if (s.n_tokens <= 0 || slots <= 0 || block <= 0) throw InputError("cuda sparse decode: empty cache or selection");
    check_selection(selection, static_cast<size_t>(s.n_kv_heads) * slots, s.n_blocks(block));
    const size_t nq = static_cast<size_t>(s.n_heads) * s.head_dim;
    const size_t nk = static_cast<size_t>(s.n_tokens) * s.n_kv_heads * s.head_dim;
    DeviceBuffer dq(nq * 2), k(nk * 2), v(nk * 2), dsel(static_cast<size_t>(s.n_kv_heads) * slots * 4);
    Guarded o(nq * 2, 0xFF);
    dq.upload_bf16(q, nq);
    k.upload_bf16(cache.k, nk);
    v.upload_bf16(cache.v, nk);
    dsel.upload(selection, dsel.bytes());
    kern::SparseAttentionOp op;
    op.q = static_cast<bf16*>(dq.data());
    op.k = static_cast<bf16*>(k.data());
    op.v = static_cast<bf16*>(v.data());
    op.out = static_cast<bf16*>(o.data());
    op.sel = static_cast<int32_t*>(dsel.data());
    op.slots = slots;
    op.block = block;
    op.n_q = 1;
    op.q_offset = s.n_tokens - 1;
    op.n_kv = s.n_tokens;
    op.n_heads = s.n_heads;
    op.n_kv_heads = s.n_kv_heads;
    op.head_dim = s.head_dim;
    op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
    run_sparse(op, nullptr, nullptr);
    std::vector<bf16> host(nq);
    o.finish(host.data(), "attention");
    to_float(host, out);
}

// ---- benchmark harness --------------------------------------------------------------
namespace {
__global__ void fill_random_kernel(bf16* p, size_t n, uint64_t seed) {
    size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    for (; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        uint64_t x = seed ^ (i * 0x9E3779B97F4A7C15ull);
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
        // Sum of 4 uniforms, scaled to unit variance (Irwin-Hall): cheap and bell-shaped.
        float s = 0.f;
        for (int j = 0; j < 4; ++j) s += static_cast<float>((x >> (16 * j)) & 0xffff) * (1.0f / 65535.0f);
        p[i] = __float2bfloat16((s - 2.0f) * 1.7320508f);
    }
}
void fill_random(DeviceBuffer& b, uint64_t seed) {
    size_t n = b.bytes() / 2;
    fill_random_kernel<<<1024, 256>>>(static_cast<bf16*>(b.data()), n, seed);
    MSA_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

struct AttentionBench::State {
    BenchShape shape;
    DeviceBuffer q, k, v, o, iq, ik, sel;
    DeviceBuffer index_scratch, sparse_scratch, dense_scratch;
    DeviceBuffer dq, dout, dsel, dscores;  // decode (query = last token)
    int slots = 0, nb = 0;
    cudaEvent_t e0 = nullptr, e1 = nullptr;

    kern::DenseAttentionOp dense_op(bool decode) {
        kern::DenseAttentionOp op;
        op.q = static_cast<bf16*>(decode ? dq.data() : q.data());
        op.k = static_cast<bf16*>(k.data());
        op.v = static_cast<bf16*>(v.data());
        op.out = static_cast<bf16*>(decode ? dout.data() : o.data());
        op.n_q = decode ? 1 : shape.n_tokens;
        op.q_offset = decode ? shape.n_tokens - 1 : 0;
        op.n_kv = shape.n_tokens;
        op.n_heads = shape.n_heads;
        op.n_kv_heads = shape.n_kv_heads;
        op.head_dim = shape.head_dim;
        op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
        return op;
    }
    kern::IndexTopkOp index_op(bool decode) {
        kern::IndexTopkOp op;
        const int G = shape.n_kv_heads;
        op.q = static_cast<bf16*>(iq.data()) + (decode ? static_cast<size_t>(shape.n_tokens - 1) * G * shape.index_dim : 0);
        op.k = static_cast<bf16*>(ik.data());
        op.n_q = decode ? 1 : shape.n_tokens;
        op.q_offset = decode ? shape.n_tokens - 1 : 0;
        op.n_kv = shape.n_tokens;
        op.n_groups = G;
        op.n_key_heads = shape.index_key_heads;
        op.dim = shape.index_dim;
        op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.index_dim)));
        op.block = shape.config.block;
        op.pool = pool_of(shape.config.scorer);
        op.seed = shape.config.seed;
        op.k_top = shape.config.k;
        op.sink = shape.config.sink;
        op.slots = slots;
        op.sel = static_cast<int32_t*>(decode ? dsel.data() : sel.data());
        op.scores = decode ? static_cast<float*>(dscores.data()) : nullptr;
        return op;
    }
    kern::SparseAttentionOp sparse_op(bool decode) {
        kern::SparseAttentionOp op;
        op.q = static_cast<bf16*>(decode ? dq.data() : q.data());
        op.k = static_cast<bf16*>(k.data());
        op.v = static_cast<bf16*>(v.data());
        op.out = static_cast<bf16*>(decode ? dout.data() : o.data());
        op.sel = static_cast<int32_t*>(decode ? dsel.data() : sel.data());
        op.slots = slots;
        op.block = shape.config.block;
        op.n_q = decode ? 1 : shape.n_tokens;
        op.q_offset = decode ? shape.n_tokens - 1 : 0;
        op.n_kv = shape.n_tokens;
        op.n_heads = shape.n_heads;
        op.n_kv_heads = shape.n_kv_heads;
        op.head_dim = shape.head_dim;
        op.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
        return op;
    }
    // Median over reps of the event-timed run(stream), divided by per_run (the
    // launches one run makes).
    template <class F>
    double median_ms(int reps, cudaStream_t st, int per_run, F&& run) {
        std::vector<float> ms;
        for (int i = 0; i < std::max(1, reps); ++i) {
            MSA_CUDA_CHECK(cudaEventRecord(e0, st));
            run();
            MSA_CUDA_CHECK(cudaEventRecord(e1, st));
            MSA_CUDA_CHECK(cudaEventSynchronize(e1));
            float t = 0;
            MSA_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
            ms.push_back(t / static_cast<float>(per_run));
        }
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
    }
    template <class F>
    double time(int reps, F&& launch) {
        launch();  // warm-up (and first-launch attribute setup)
        MSA_CUDA_CHECK(cudaDeviceSynchronize());
        return median_ms(reps, nullptr, 1, launch);
    }
    // launch(stream) captured once into a CUDA graph, then `inner` back-to-back
    // replays per timed sample: how a serving engine runs a decode step, with
    // no host launch gaps between its kernels. The warm-up runs eagerly first,
    // so one-time setup (shared-memory attributes, occupancy queries) stays out
    // of the capture.
    template <class F>
    double time_graph(int reps, int inner, F&& launch) {
        cudaStream_t st = nullptr;
        MSA_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        launch(st);
        MSA_CUDA_CHECK(cudaStreamSynchronize(st));
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        MSA_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        launch(st);
        MSA_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
        MSA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        MSA_CUDA_CHECK(cudaGraphLaunch(exec, st));
        MSA_CUDA_CHECK(cudaStreamSynchronize(st));
        const double ms = median_ms(reps, st, inner, [&] {
            for (int j = 0; j < inner; ++j) MSA_CUDA_CHECK(cudaGraphLaunch(exec, st));
        });
        MSA_CUDA_CHECK(cudaGraphExecDestroy(exec));
        MSA_CUDA_CHECK(cudaGraphDestroy(graph));
        MSA_CUDA_CHECK(cudaStreamDestroy(st));
        return ms;
    }
};

AttentionBench::AttentionBench(const BenchShape& shape, uint64_t seed) : s_(std::make_unique<State>()) {
    const BenchShape& b = shape;
    if (b.n_tokens <= 0 || b.n_kv_heads <= 0 || b.n_heads % b.n_kv_heads)
        throw InputError("bench: bad attention shape");
    if (b.index_key_heads != 1 && b.index_key_heads != b.n_kv_heads)
        throw InputError("bench: index key heads must be 1 or the number of KV heads");
    s_->shape = b;
    const size_t N = b.n_tokens, G = b.n_kv_heads;
    s_->nb = (b.n_tokens + b.config.block - 1) / b.config.block;
    s_->slots = slots_for(b.config.k, b.config.sink, s_->nb);
    s_->q = DeviceBuffer(N * b.n_heads * b.head_dim * 2);
    s_->o = DeviceBuffer(N * b.n_heads * b.head_dim * 2);
    s_->k = DeviceBuffer(N * G * b.head_dim * 2);
    s_->v = DeviceBuffer(N * G * b.head_dim * 2);
    s_->iq = DeviceBuffer(N * G * b.index_dim * 2);
    s_->ik = DeviceBuffer(N * b.index_key_heads * b.index_dim * 2);
    s_->sel = DeviceBuffer(N * G * s_->slots * 4);
    s_->dq = DeviceBuffer(static_cast<size_t>(b.n_heads) * b.head_dim * 2);
    s_->dout = DeviceBuffer(static_cast<size_t>(b.n_heads) * b.head_dim * 2);
    s_->dsel = DeviceBuffer(G * s_->slots * 4);
    s_->dscores = DeviceBuffer(G * s_->nb * 4);
    fill_random(s_->q, seed * 7 + 1);
    fill_random(s_->k, seed * 7 + 2);
    fill_random(s_->v, seed * 7 + 3);
    fill_random(s_->iq, seed * 7 + 4);
    fill_random(s_->ik, seed * 7 + 5);
    fill_random(s_->dq, seed * 7 + 6);
    s_->sel.fill_bytes(0xff);
    s_->index_scratch = DeviceBuffer(std::max(kern::index_topk_scratch_bytes(s_->index_op(false)),
                                              kern::index_topk_scratch_bytes(s_->index_op(true))));
    s_->sparse_scratch = DeviceBuffer(std::max(kern::sparse_attention_scratch_bytes(s_->sparse_op(false)),
                                               kern::sparse_attention_scratch_bytes(s_->sparse_op(true))));
    s_->dense_scratch = DeviceBuffer(std::max(kern::dense_attention_scratch_bytes(s_->dense_op(false)),
                                              kern::dense_attention_scratch_bytes(s_->dense_op(true))));
    MSA_CUDA_CHECK(cudaEventCreate(&s_->e0));
    MSA_CUDA_CHECK(cudaEventCreate(&s_->e1));
    MSA_CUDA_CHECK(cudaDeviceSynchronize());
}

AttentionBench::~AttentionBench() {
    if (s_->e0) cudaEventDestroy(s_->e0);
    if (s_->e1) cudaEventDestroy(s_->e1);
}

namespace {
template <class Op>
Op with_scratch(Op op, DeviceBuffer& b) {
    op.scratch = b.data();
    op.scratch_bytes = b.bytes();
    return op;
}
}  // namespace

double AttentionBench::time_dense(int reps) {
    auto op = with_scratch(s_->dense_op(false), s_->dense_scratch);
    return s_->time(reps, [&] { kern::dense_attention_launch(op, nullptr); });
}
double AttentionBench::time_index(int reps) {
    auto op = with_scratch(s_->index_op(false), s_->index_scratch);
    return s_->time(reps, [&] { kern::index_topk_launch(op, nullptr); });
}
double AttentionBench::time_sparse(int reps) {
    auto op = with_scratch(s_->sparse_op(false), s_->sparse_scratch);
    return s_->time(reps, [&] { kern::sparse_attention_launch(op, nullptr); });
}
double AttentionBench::time_dense_decode(int reps) {
    auto op = with_scratch(s_->dense_op(true), s_->dense_scratch);
    return s_->time(reps, [&] { kern::dense_attention_launch(op, nullptr); });
}
double AttentionBench::time_index_decode(int reps) {
    auto op = with_scratch(s_->index_op(true), s_->index_scratch);
    return s_->time(reps, [&] { kern::index_topk_launch(op, nullptr); });
}
double AttentionBench::time_sparse_decode(int reps) {
    auto op = with_scratch(s_->sparse_op(true), s_->sparse_scratch);
    return s_->time(reps, [&] { kern::sparse_attention_launch(op, nullptr); });
}

double AttentionBench::time_index_decode_scores(int reps) {
    auto op = with_scratch(s_->index_op(true), s_->index_scratch);
    op.sel = nullptr;  // scores only: the top-k pass left out
    return s_->time(reps, [&] { kern::index_topk_launch(op, nullptr); });
}
double AttentionBench::time_decode_step(int reps, bool sparse) {
    constexpr int kInner = 10;
    if (!sparse) {
        auto op = with_scratch(s_->dense_op(true), s_->dense_scratch);
        return s_->time_graph(reps, kInner, [&](cudaStream_t st) { kern::dense_attention_launch(op, st); });
    }
    auto iop = with_scratch(s_->index_op(true), s_->index_scratch);
    auto sop = with_scratch(s_->sparse_op(true), s_->sparse_scratch);
    return s_->time_graph(reps, kInner, [&](cudaStream_t st) {
        kern::index_topk_launch(iop, st);
        kern::sparse_attention_launch(sop, st);
    });
}

std::vector<KernelRecord> AttentionBench::profile(bool prefer_cupti, std::string* warning, bool dense, bool decode) {
    KernelCollector collector(prefer_cupti);
    collector.start();
    run_index(s_->index_op(false), &s_->index_scratch, nullptr);
    run_sparse(s_->sparse_op(false), &s_->sparse_scratch, nullptr);
    if (dense) {
        auto op = with_scratch(s_->dense_op(false), s_->dense_scratch);
        double bytes = 0, flops = dense_cost(op, &bytes);
        LaunchTag tag("dense", "dense_attention", flops, bytes, nullptr);
        kern::dense_attention_launch(op, nullptr);
    }
    if (decode) {  // one decode step, kernel by kernel
        run_index(s_->index_op(true), &s_->index_scratch, nullptr, "decode");
        run_sparse(s_->sparse_op(true), &s_->sparse_scratch, nullptr, "decode");
    }
    auto records = collector.stop();
    if (warning) *warning = collector.warning();
    return records;
}

void AttentionBench::save_selection(const std::string& path) const {
    std::vector<int32_t> host(s_->sel.bytes() / 4);
    s_->sel.download(host.data(), s_->sel.bytes());
    std::ofstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write " + path);
    f.write(reinterpret_cast<const char*>(host.data()), static_cast<std::streamsize>(host.size() * 4));
}
int AttentionBench::slots() const { return s_->slots; }
size_t AttentionBench::device_bytes() const {
    const State& s = *s_;
    return s.q.bytes() + s.k.bytes() + s.v.bytes() + s.o.bytes() + s.iq.bytes() + s.ik.bytes() + s.sel.bytes() +
           s.index_scratch.bytes() + s.sparse_scratch.bytes() + s.dense_scratch.bytes();
}

}  // namespace msa::cuda
