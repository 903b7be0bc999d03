// Dequantizers on hand-built blocks whose expected values are computed from
// the packing side (how each format stores its numbers), plus the half /
// bfloat16 conversions and SHA-256.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dequant.h"
#include "core/errors.h"
#include "core/sha256.h"

using namespace msa;

namespace {
void put_half(std::vector<uint8_t>& b, size_t at, uint16_t h) {
    b[at] = uint8_t(h);
    b[at + 1] = uint8_t(h >> 8);
}
}  // namespace

TEST(Half, KnownValues) {
    EXPECT_EQ(half_to_float(0x3C00), 1.0f);
    EXPECT_EQ(half_to_float(0xC000), -2.0f);
    EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
    EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
    EXPECT_EQ(half_to_float(0x03FF), std::ldexp(1023.0f, -24));
    EXPECT_TRUE(std::isinf(half_to_float(0x7C00)));
    EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
    EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
    EXPECT_EQ(float_to_half(1.0f), 0x3C00);
    EXPECT_EQ(float_to_half(-2.0f), 0xC000);
    EXPECT_EQ(float_to_half(65504.0f), 0x7BFF);
    EXPECT_EQ(float_to_half(65520.0f), 0x7C00);  // halfway to the next step rounds to even: infinity
    EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even (down)
    EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie to even (up)
    EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and the smallest subnormal
    EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(Half, EveryFiniteHalfRoundTrips) {
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {
        if ((bits & 0x7C00) == 0x7C00) continue;  // inf / nan
        float f = half_to_float(uint16_t(bits));
        ASSERT_EQ(float_to_half(f), bits) << "half bits " << bits;
    }
}

TEST(BFloat16, ConvertsAndRounds) {
    EXPECT_EQ(bfloat16_to_float(0x3F80), 1.0f);
    EXPECT_EQ(bfloat16_to_float(0xC040), -3.0f);
    EXPECT_EQ(float_to_bfloat16(1.0f), 0x3F80);
    EXPECT_EQ(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie, even stays
    EXPECT_EQ(float_to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie, rounds up to even
    EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(NAN))));
}

TEST(Dequant, TypeTraits) {
    EXPECT_STREQ(ggml_type_traits(3).name, "Q4_1");
    EXPECT_EQ(ggml_type_traits(3).block_bytes, 20u);
    EXPECT_EQ(ggml_type_traits(12).block_elements, 256u);
    EXPECT_EQ(ggml_type_traits(12).block_bytes, 144u);
    EXPECT_EQ(ggml_type_traits(14).block_bytes, 210u);
    EXPECT_EQ(ggml_type_traits(8).block_bytes, 34u);
    EXPECT_EQ(ggml_type_traits(30).block_bytes, 2u);
    EXPECT_EQ(ggml_type_traits(4).name, nullptr);  // removed Q4_2
    EXPECT_EQ(ggml_type_traits(999).name, nullptr);
    EXPECT_EQ(ggml_type_name(999), "type#999");
    std::vector<uint8_t> block(176, 0);
    std::vector<float> out(256);
    EXPECT_THROW(dequantize(GgmlType::Q5_K, block.data(), out.data(), 256), InputError);
}

TEST(Dequant, F16AndBF16) {
    const uint16_t halves[3] = {0x3C00, 0xB800, 0x4500};  // 1, -0.5, 5
    float out[3];
    dequantize(GgmlType::F16, halves, out, 3);
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -0.5f);
    EXPECT_EQ(out[2], 5.0f);
    const uint16_t bf[2] = {0x4040, 0xBE80};  // 3, -0.25
    dequantize(GgmlType::BF16, bf, out, 2);
    EXPECT_EQ(out[0], 3.0f);
    EXPECT_EQ(out[1], -0.25f);
}

TEST(Dequant, Q8_0) {
    std::vector<uint8_t> block(2 * 34);
    put_half(block, 0, 0x3800);   // d = 0.5
    put_half(block, 34, 0xC000);  // d = -2
    for (int j = 0; j < 32; ++j) {
        block[2 + j] = uint8_t(int8_t(j * 8 - 128));
        block[36 + j] = uint8_t(int8_t(127 - j));
    }
    std::vector<float> out(64);
    dequantize(GgmlType::Q8_0, block.data(), out.data(), 64);
    for (int j = 0; j < 32; ++j) {
        EXPECT_EQ(out[j], 0.5f * (j * 8 - 128));
        EXPECT_EQ(out[32 + j], -2.0f * (127 - j));
    }
}

TEST(Dequant, Q4_0) {
    std::vector<uint8_t> block(18);
    put_half(block, 0, 0x4000);  // d = 2
    for (int j = 0; j < 16; ++j) block[2 + j] = uint8_t(j | ((15 - j) << 4));
    std::vector<float> out(32);
    dequantize(GgmlType::Q4_0, block.data(), out.data(), 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(out[j], 2.0f * (j - 8)) << j;             // low nibbles fill the first half
        EXPECT_EQ(out[j + 16], 2.0f * (15 - j - 8)) << j;  // high nibbles the second
    }
}

TEST(Dequant, Q4_1) {
    std::vector<uint8_t> block(20);
    put_half(block, 0, 0x3400);  // d = 0.25
    put_half(block, 2, 0xBC00);  // m = -1
    for (int j = 0; j < 16; ++j) block[4 + j] = uint8_t(((j * 3) & 15) | (j << 4));
    std::vector<float> out(32);
    dequantize(GgmlType::Q4_1, block.data(), out.data(), 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(out[j], 0.25f * ((j * 3) & 15) - 1.0f);
        EXPECT_EQ(out[j + 16], 0.25f * j - 1.0f);
    }
}

// Q4_K: 8 sub-blocks of 32 with 6-bit scale and min each, packed into 12 bytes.
// The values below use all 6 bits so the split high bits of sub-blocks 4-7 matter.
// (Cross-checked while developing against gguf-py's dequantize on these bytes.)
TEST(Dequant, Q4_K) {
    const int scale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
    const int minimum[8] = {0, 5, 10, 15, 20, 40, 61, 1};
    std::vector<uint8_t> block(144, 0);
    put_half(block, 0, 0x3C00);  // d = 1
    put_half(block, 2, 0x3800);  // dmin = 0.5
    uint8_t* packed = block.data() + 4;
    for (int k = 0; k < 4; ++k) {
        packed[k] = uint8_t(scale[k] | ((scale[k + 4] >> 4) << 6));
        packed[k + 4] = uint8_t(minimum[k] | ((minimum[k + 4] >> 4) << 6));
        packed[k + 8] = uint8_t((scale[k + 4] & 15) | ((minimum[k + 4] & 15) << 4));
    }
    uint8_t* qs = block.data() + 16;
    for (int pair = 0; pair < 4; ++pair)
        for (int l = 0; l < 32; ++l) qs[pair * 32 + l] = uint8_t((l % 16) | (((l + pair) % 16) << 4));
    std::vector<float> out(256);
    dequantize(GgmlType::Q4_K, block.data(), out.data(), 256);
    for (int pair = 0; pair < 4; ++pair) {
        for (int l = 0; l < 32; ++l) {
            const int lo = 2 * pair, hi = 2 * pair + 1;
            EXPECT_FLOAT_EQ(out[pair * 64 + l], 1.0f * scale[lo] * (l % 16) - 0.5f * minimum[lo]) << pair << "," << l;
            EXPECT_FLOAT_EQ(out[pair * 64 + 32 + l], 1.0f * scale[hi] * ((l + pair) % 16) - 0.5f * minimum[hi]);
        }
    }
}

// Q6_K: element e of a 256-block has a 6-bit value split over ql (low 4 bits)
// and qh (high 2 bits), and one signed 8-bit scale per 16 elements.
TEST(Dequant, Q6_K) {
    std::vector<uint8_t> block(210, 0);
    uint8_t* ql = block.data();
    uint8_t* qh = block.data() + 128;
    int8_t* scales = reinterpret_cast<int8_t*>(block.data() + 192);
    put_half(block, 208, 0x3800);  // d = 0.5
    for (int k = 0; k < 16; ++k) scales[k] = int8_t(k * 5 - 40);
    std::vector<int> q(256), scale_of(256);
    for (int e = 0; e < 256; ++e) {
        q[e] = (e * 7 + 3) % 64;
        const int half = e / 128, r = e % 128, group = r / 32, l = r % 32;
        uint8_t& low = ql[half * 64 + (group & 1) * 32 + l];
        low |= uint8_t(group < 2 ? (q[e] & 15) : ((q[e] & 15) << 4));
        qh[half * 32 + l] |= uint8_t((q[e] >> 4) << (2 * group));
        scale_of[e] = scales[half * 8 + l / 16 + 2 * group];
    }
    std::vector<float> out(256);
    dequantize(GgmlType::Q6_K, block.data(), out.data(), 256);
    for (int e = 0; e < 256; ++e) EXPECT_FLOAT_EQ(out[e], 0.5f * scale_of[e] * (q[e] - 32)) << e;
}

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const std::string million(1000000, 'a');
    EXPECT_EQ(sha256_hex(million.data(), million.size()),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkingAndPortablePathAgree) {
    std::vector<uint8_t> data(10007);
    for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t((i * 2654435761u) >> 13);
    const std::string whole = sha256_hex(data.data(), data.size());
    for (bool hardware : {true, false}) {
        for (size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 1000u}) {
            Sha256 h(hardware);
            for (size_t at = 0; at < data.size(); at += chunk) h.update(data.data() + at, std::min(chunk, data.size() - at));
            EXPECT_EQ(h.hex_digest(), whole) << "chunk " << chunk << " hardware " << hardware;
        }
    }
    Sha256 portable(false);
    portable.update("abc", 3);
    EXPECT_EQ(portable.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
