// The packed GEMM against a plain double-precision product, over shapes that
// hit every edge path: rows not a multiple of 6, outputs not a multiple of 16,
// k split into chunks, fused parts, bias, accumulate, column sub-ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/gemm.h"

namespace {

msa::Matrix random_matrix(int rows, int cols, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    msa::Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.data.resize(static_cast<size_t>(rows) * cols);
    for (auto& v : m.data) v = u(rng);
    return m;
}

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& e : v) e = u(rng);
    return v;
}

// Relative error in the max norm, scaled by the sum of |terms| of each dot
// product, which is the bound float accumulation obeys (cancellation in a
// near-zero output must not be mistaken for a kernel bug).
double max_scaled_error(const std::vector<float>& got, const std::vector<double>& want,
                        const std::vector<double>& magnitude) {
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        double e = std::fabs(got[i] - want[i]) / std::max(magnitude[i], 1e-30);
        worst = std::max(worst, e);
    }
    return worst;
}

struct Reference {
    std::vector<double> y, magnitude;
};

Reference naive(const std::vector<float>& x, int n, int in, const msa::Matrix& w, const std::vector<float>* bias) {
    Reference r;
    r.y.resize(static_cast<size_t>(n) * w.rows);
    r.magnitude.resize(r.y.size());
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < w.rows; ++o) {
            double s = bias ? (*bias)[o] : 0.0, m = bias ? std::fabs((*bias)[o]) : 0.0;
            for (int k = 0; k < in; ++k) {
                double t = static_cast<double>(x[static_cast<size_t>(i) * in + k]) * w.row(o)[k];
                s += t;
                m += std::fabs(t);
            }
            r.y[static_cast<size_t>(i) * w.rows + o] = s;
            r.magnitude[static_cast<size_t>(i) * w.rows + o] = m;
        }
    return r;
}

struct Shape {
    int n, in, out, threads;
};

class GemmShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmShapes, MatchesDoubleReference) {
    const Shape s = GetParam();
    std::mt19937 rng(1234 + s.n * 7 + s.in * 13 + s.out);
    msa::Matrix w = random_matrix(s.out, s.in, rng);
    std::vector<float> x = random_vector(static_cast<size_t>(s.n) * s.in, rng);
    std::vector<float> bias = random_vector(s.out, rng);
    for (bool with_bias : {false, true}) {
        std::vector<float> y(static_cast<size_t>(s.n) * s.out, NAN);
        msa::gemm(x.data(), s.n, w, with_bias ? bias.data() : nullptr, y.data(), s.threads);
        Reference ref = naive(x, s.n, s.in, w, with_bias ? &bias : nullptr);
        for (float v : y) ASSERT_TRUE(std::isfinite(v)) << "an output was never written";
        EXPECT_LT(max_scaled_error(y, ref.y, ref.magnitude), 1e-5)
            << s.n << "x" << s.in << " * " << s.out << " bias=" << with_bias;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmShapes,
                         ::testing::Values(Shape{1, 1, 1, 1}, Shape{1, 7, 3, 2}, Shape{5, 17, 15, 1},
                                           Shape{6, 16, 16, 1}, Shape{7, 33, 17, 2}, Shape{13, 64, 31, 3},
                                           Shape{97, 576, 49, 2},     // one row past a row block
                                           Shape{100, 641, 100, 2},   // k split into chunks, odd tail
                                           Shape{37, 1536, 40, 2},    // k = 3 x 512
                                           Shape{193, 96, 800, 2},    // many column blocks
                                           Shape{64, 576, 192, 1}));

TEST(Gemm, FusedPartsBiasAccumulateAndColumnRange) {
    std::mt19937 rng(99);
    const int n = 23, in = 70;
    msa::Matrix a = random_matrix(20, in, rng), b = random_matrix(9, in, rng), c = random_matrix(35, in, rng);
    std::vector<float> bias_a = random_vector(20, rng), bias_c = random_vector(35, rng);
    std::vector<float> x = random_vector(static_cast<size_t>(n) * in, rng);
    // b has no bias: a null entry means zeros.
    msa::PackedWeights p = msa::pack_weights({&a, &b, &c}, {&bias_a, nullptr, &bias_c}, 2);
    ASSERT_EQ(p.out, 64);
    ASSERT_EQ(p.n_panels, 4);

    msa::Matrix all;
    all.rows = 64;
    all.cols = in;
    for (const msa::Matrix* m : {&a, &b, &c}) all.data.insert(all.data.end(), m->data.begin(), m->data.end());
    std::vector<float> all_bias = bias_a;
    all_bias.insert(all_bias.end(), 9, 0.0f);
    all_bias.insert(all_bias.end(), bias_c.begin(), bias_c.end());
    Reference ref = naive(x, n, in, all, &all_bias);

    // Columns [16, 50) into a strided buffer that already holds values: accumulate adds.
    const int ldy = 40, width = 34;
    std::vector<float> y(static_cast<size_t>(n) * ldy, 0.5f);
    msa::GemmOutput o;
    o.y = y.data();
    o.ldy = ldy;
    o.accumulate = true;
    o.col_begin = 16;
    o.col_end = 50;
    msa::gemm(x.data(), n, in, p, o, 2);
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < ldy; ++j) {
            const float got = y[static_cast<size_t>(i) * ldy + j];
            if (j >= width) {
                EXPECT_EQ(got, 0.5f) << "wrote past the column range at " << i << "," << j;
                continue;
            }
            const size_t r = static_cast<size_t>(i) * 64 + 16 + j;
            EXPECT_NEAR(got, ref.y[r] + 0.5, 1e-5 * (ref.magnitude[r] + 0.5)) << i << "," << j;
        }
    }
}

TEST(Gemm, StridedInputRows) {
    std::mt19937 rng(5);
    const int n = 11, in = 40, ldx = 57;
    msa::Matrix w = random_matrix(21, in, rng);
    std::vector<float> xs = random_vector(static_cast<size_t>(n) * ldx, rng);
    std::vector<float> x(static_cast<size_t>(n) * in);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < in; ++k) x[static_cast<size_t>(i) * in + k] = xs[static_cast<size_t>(i) * ldx + k];
    msa::PackedWeights p = msa::pack_weights(w);
    std::vector<float> y(static_cast<size_t>(n) * 21);
    msa::GemmOutput o;
    o.y = y.data();
    o.ldy = 21;
    msa::gemm(xs.data(), n, ldx, p, o, 1);
    Reference ref = naive(x, n, in, w, nullptr);
    EXPECT_LT(max_scaled_error(y, ref.y, ref.magnitude), 1e-5);
}

TEST(Gemm, ThreadCountDoesNotChangeResults) {
    // Each output is one k loop in a fixed order whatever the work split, so
    // results must be bit-identical across thread counts.
    std::mt19937 rng(8);
    const int n = 301, in = 1100, out = 333;
    msa::Matrix w = random_matrix(out, in, rng);
    std::vector<float> x = random_vector(static_cast<size_t>(n) * in, rng);
    std::vector<float> y1(static_cast<size_t>(n) * out), y3(y1.size());
    msa::gemm(x.data(), n, w, nullptr, y1.data(), 1);
    msa::gemm(x.data(), n, w, nullptr, y3.data(), 3);
    EXPECT_EQ(y1, y3);
}

TEST(Gemm, RejectsMismatchedParts) {
    msa::Matrix a, b;
    a.rows = 2, a.cols = 3, a.data.assign(6, 1.0f);
    b.rows = 2, b.cols = 4, b.data.assign(8, 1.0f);
    EXPECT_THROW(msa::pack_weights({&a, &b}), std::invalid_argument);
    msa::PackedWeights p = msa::pack_weights(a);
    std::vector<float> x(3), y(2);
    msa::GemmOutput o;
    o.y = y.data();
    o.ldy = 2;
    o.col_begin = 8;  // not a panel boundary
    EXPECT_THROW(msa::gemm(x.data(), 1, 3, p, o), std::invalid_argument);
}

}  // namespace
