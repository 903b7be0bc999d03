#include "core/flops.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>

#include "core/errors.h"

namespace msa {

AttentionFlopsShape msa_m3_shape() {
    AttentionFlopsShape s;
    s.name = "MiniMax-M3";
    s.n_heads = 64;
    s.n_kv_heads = 4;
    s.head_dim = 128;
    s.index_heads = 4;
    s.index_dim = 128;
    return s;
}

// The per-token model averages over a causal prefill: a query sees N/2 keys on
// average, so dense costs QK^T + PV = 2 * (2 * Hq * dh) per visible key.
double dense_flops_per_token(const AttentionFlopsShape& s, double n) {
    return 4.0 * s.n_heads * s.head_dim * (n / 2.0);
}

// MSA attends to at most k*B keys per query, but pays the index pass (one
// multiply-add per index channel, head and visible key) over the whole prefix.
double msa_flops_per_token(const AttentionFlopsShape& s, double n, int k, int block) {
    if (k < 1) throw InputError("k must be >= 1, got " + std::to_string(k));
    if (block < 1) throw InputError("block must be >= 1, got " + std::to_string(block));
    double attended = std::min(static_cast<double>(k) * block, n / 2.0);
    return 4.0 * s.n_heads * s.head_dim * attended + 2.0 * s.index_heads * s.index_dim * (n / 2.0);
}

double flops_ratio(const AttentionFlopsShape& s, double n, int k, int block) {
    double m = msa_flops_per_token(s, n, k, block);
    return m > 0 ? dense_flops_per_token(s, n) / m : 0.0;
}

double flops_ratio_ceiling(const AttentionFlopsShape& s) {
    double index = static_cast<double>(s.index_heads) * s.index_dim;
    return index > 0 ? 2.0 * s.n_heads * s.head_dim / index : std::numeric_limits<double>::infinity();
}

static double visible_pairs(int n) {
    double nn = std::max(0, n);
    return nn * (nn + 1.0) / 2.0;
}

double dense_attention_flops(int n_tokens, int n_heads, int head_dim) {
    return 4.0 * n_heads * head_dim * visible_pairs(n_tokens);
}

double index_flops(int n_tokens, int index_heads, int index_dim) {
    return 2.0 * index_heads * index_dim * visible_pairs(n_tokens);
}

// Worst case: every query keeps min(k, visible blocks) blocks, the local one
// partially visible (t - local*B + 1 keys) and the others full. Since the kept
// non-local blocks are at most `local` full blocks, this never exceeds t + 1.
double sparse_attention_flops(int n_tokens, int n_heads, int head_dim, int k, int block) {
    if (k < 1) throw InputError("k must be >= 1, got " + std::to_string(k));
    if (block < 1) throw InputError("block must be >= 1, got " + std::to_string(block));
    double keys = 0;
    int n = std::max(0, n_tokens);
    int n_blocks = (n + block - 1) / block;
    for (int local = 0; local < n_blocks; ++local) {
        double rows = std::min<long long>(block, static_cast<long long>(n) - static_cast<long long>(local) * block);
        double other_blocks = std::min(k, local + 1) - 1;
        keys += rows * (rows + 1.0) / 2.0 + rows * other_blocks * block;
    }
    return 4.0 * n_heads * head_dim * keys;
}

namespace {

std::string trimmed(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

std::vector<std::string> split_items(const std::string& s, const char* what) {
    std::vector<std::string> items;
    if (trimmed(s).empty()) throw InputError(std::string("empty ") + what + " list");
    size_t start = 0;
    while (true) {
        size_t comma = s.find(',', start);
        items.push_back(trimmed(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return items;
}

// Strict decimal integer: optional sign, digits only, no overflow.
bool parse_decimal(const std::string& text, long long& value) {
    if (text.empty()) return false;
    size_t i = (text[0] == '-' || text[0] == '+') ? 1 : 0;
    if (i == text.size()) return false;
    for (size_t c = i; c < text.size(); ++c)
        if (!std::isdigit(static_cast<unsigned char>(text[c]))) return false;
    errno = 0;
    char* end = nullptr;
    value = std::strtoll(text.c_str(), &end, 10);
    return errno == 0 && end == text.c_str() + text.size();
}

}  // namespace

std::vector<long long> parse_size_list(const std::string& s) {
    std::vector<long long> out;
    for (const std::string& item : split_items(s, "size")) {
        auto bad = [&] {
            return InputError("bad size '" + item + "' in '" + s + "' (expected positive sizes like 4096, 64K, 1M)");
        };
        if (item.empty()) throw bad();
        long long multiplier = 1;
        std::string digits = item;
        char last = static_cast<char>(std::toupper(static_cast<unsigned char>(item.back())));
        if (last == 'K') multiplier = 1024;
        else if (last == 'M') multiplier = 1024LL * 1024;
        else if (last == 'G') multiplier = 1024LL * 1024 * 1024;
        if (multiplier != 1) digits = item.substr(0, item.size() - 1);
        long long value = 0;
        if (digits.empty() || digits[0] == '-' || digits[0] == '+' || !parse_decimal(digits, value)) throw bad();
        if (value <= 0 || value > std::numeric_limits<long long>::max() / multiplier) throw bad();
        out.push_back(value * multiplier);
    }
    return out;
}

std::vector<int> parse_int_list(const std::string& s) {
    std::vector<int> out;
    for (const std::string& item : split_items(s, "integer")) {
        long long value = 0;
        if (!parse_decimal(item, value) || value < std::numeric_limits<int>::min() ||
            value > std::numeric_limits<int>::max())
            throw InputError("bad integer '" + item + "' in '" + s + "'");
        out.push_back(static_cast<int>(value));
    }
    return out;
}

}  // namespace msa
