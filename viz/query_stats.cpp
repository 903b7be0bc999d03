#include "viz/query_stats.h"

#include <algorithm>
#include <iterator>
#include <numeric>

namespace msa::viz {

namespace {
bool ranks_before(float sa, int a, float sb, int b) { return sa > sb || (sa == sb && a < b); }
}  // namespace

int block_rank(const float* scores, int visible, int b) {
    if (b < 0 || b >= visible) return 0;
    int rank = 1;
    for (int i = 0; i < visible; ++i)
        if (i != b && ranks_before(scores[i], i, scores[b], b)) ++rank;
    return rank;
}

std::vector<int> ranked_blocks(const float* scores, int visible, int limit) {
    std::vector<int> ids(std::max(0, visible));
    std::iota(ids.begin(), ids.end(), 0);
    int keep = std::min<int>(limit, static_cast<int>(ids.size()));
    std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(),
                      [&](int a, int b) { return ranks_before(scores[a], a, scores[b], b); });
    ids.resize(keep);
    return ids;
}

bool is_selected(const Selection& selection, int t, int g, int b) {
    if (t < 0 || t >= selection.n_tokens || g < 0 || g >= selection.n_groups) return false;
    const int32_t* row = selection.row(t, g);
    for (int i = 0; i < selection.slots; ++i)
        if (row[i] == b) return true;
    return false;
}

}  // namespace msa::viz

#include <cmath>

namespace msa::viz {

double selection_jaccard(const Selection& a, const Selection& b) {
    if (a.n_tokens != b.n_tokens || a.n_groups != b.n_groups || a.n_tokens == 0) return NAN;
    double total = 0;
    std::vector<int32_t> ra, rb;
    for (int t = 0; t < a.n_tokens; ++t)
        for (int g = 0; g < a.n_groups; ++g) {
            ra.assign(a.row(t, g), a.row(t, g) + a.slots);
            rb.assign(b.row(t, g), b.row(t, g) + b.slots);
            ra.erase(std::remove(ra.begin(), ra.end(), -1), ra.end());
            rb.erase(std::remove(rb.begin(), rb.end(), -1), rb.end());
            std::sort(ra.begin(), ra.end());
            std::sort(rb.begin(), rb.end());
            std::vector<int32_t> common;
            std::set_intersection(ra.begin(), ra.end(), rb.begin(), rb.end(), std::back_inserter(common));
            size_t uni = ra.size() + rb.size() - common.size();
            total += uni ? static_cast<double>(common.size()) / uni : 1.0;
        }
    return total / (static_cast<double>(a.n_tokens) * a.n_groups);
}

}  // namespace msa::viz
