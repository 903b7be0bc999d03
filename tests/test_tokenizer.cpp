// The byte-level BPE tokenizer: exact ids against llama.cpp on SmolLM2's
// vocabulary (tests/fixtures/tokenizer_smollm2.json, made by
// scripts/make_tokenizer_fixture.py), the pre-tokenizers against Python's
// regex module, round trips of arbitrary bytes, and the error paths.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/model.h"
#include "core/tokenizer.h"
#include "core/unicode.h"
#include "core/vocabulary.h"

namespace {

nlohmann::json load_fixture() {
    const std::string path = std::string(MSASCOPE_SOURCE_DIR) + "/tests/fixtures/tokenizer_smollm2.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in);
}

bool model_required() {
    const char* v = std::getenv("MSASCOPE_REQUIRE_MODEL");
    return v && std::string(v) == "1";
}

// The real vocabulary, or nullptr after GTEST_SKIP/FAIL when the model is absent.
const msa::Tokenizer* smollm2() {
    static const std::string path = msa::default_model_path();
    static const bool present = std::filesystem::exists(path);
    if (!present) return nullptr;
    static const msa::Tokenizer tokenizer(msa::load_vocabulary(path));
    return &tokenizer;
}

#define REQUIRE_SMOLLM2(tok)                                                                            \
    const msa::Tokenizer* tok = smollm2();                                                              \
    if (!tok) {                                                                                         \
        if (model_required()) FAIL() << "model not found at " << msa::default_model_path();            \
        GTEST_SKIP() << "SmolLM2 GGUF not found at " << msa::default_model_path()                      \
                     << " (set MSASCOPE_REQUIRE_MODEL=1 to make this a failure)";                        \
    }

std::string byte_char(unsigned char b) {
    // GPT-2's printable stand-in for a byte, rebuilt here independently of the tokenizer.
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    uint32_t cp = b;
    if (!printable) {
        uint32_t n = 0;
        for (int x = 0; x < b; ++x) {
            const bool p = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
            if (!p) ++n;
        }
        cp = 256 + n;
    }
    return msa::unicode::to_utf8(cp);
}

std::string byte_text(const std::string& bytes) {
    std::string out;
    for (unsigned char b : bytes) out += byte_char(b);
    return out;
}

// All 256 byte tokens (ids 0..255 in byte order) plus the given merges, each
// of whose results becomes a token, in order, from id 256.
msa::Vocabulary tiny_vocabulary(const std::vector<std::pair<std::string, std::string>>& merges,
                                const std::string& pre = "gpt2") {
    msa::Vocabulary v;
    v.pre = pre;
    for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_char(static_cast<unsigned char>(b)));
    for (const auto& [l, r] : merges) {
        v.merges.emplace_back(byte_text(l), byte_text(r));
        v.tokens.push_back(byte_text(l + r));
    }
    v.token_type.assign(v.tokens.size(), 1);
    return v;
}

std::string random_bytes(std::mt19937& rng, size_t n) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    return s;
}

}  // namespace

TEST(Tokenizer, MatchesLlamaCppOnSmolLM2Fixture) {
    REQUIRE_SMOLLM2(tok);
    const nlohmann::json fixture = load_fixture();
    int checked = 0;
    for (const auto& c : fixture["cases"]) {
        const std::string text = c["text"];
        const std::vector<int> want = c["ids"];
        EXPECT_EQ(tok->encode(text), want) << "case " << c["name"];
        EXPECT_EQ(tok->decode(want), text) << "case " << c["name"];
        ++checked;
    }
    for (const auto& c : fixture["special_cases"]) {
        const std::string text = c["text"];
        const std::vector<int> want = c["ids"];
        EXPECT_EQ(tok->encode_with_special(text), want) << "special case " << c["name"];
        EXPECT_EQ(tok->decode(want), text) << "special case " << c["name"];
        ++checked;
    }
    EXPECT_GE(checked, 20);
}

TEST(Tokenizer, SmolLM2BasicFacts) {
    REQUIRE_SMOLLM2(tok);
    EXPECT_EQ(tok->size(), 49152);
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
    EXPECT_EQ(tok->token_text(1), "<|im_start|>");
    EXPECT_EQ(tok->token_text(2), "<|im_end|>");
    const std::vector<int> hello = tok->encode(" hello");
    ASSERT_EQ(hello.size(), 1u);
    EXPECT_EQ(tok->token_text(hello[0]), " hello");
    // Byte tokens are raw bytes, even ones that are not UTF-8 on their own.
    const std::vector<int> byte = tok->encode(std::string("\xE9", 1));
    ASSERT_EQ(byte.size(), 1u);
    EXPECT_EQ(tok->token_text(byte[0]), std::string("\xE9", 1));
    EXPECT_THROW(tok->token_text(-1), msa::InputError);
    EXPECT_THROW(tok->token_text(tok->size()), msa::InputError);
    EXPECT_THROW(tok->decode({0, 49152}), msa::InputError);
}

TEST(Tokenizer, ControlTokensAreTextUnlessAskedFor) {
    REQUIRE_SMOLLM2(tok);
    const std::string chat = "<|im_start|>user\nhi<|im_end|>";
    const std::vector<int> plain = tok->encode(chat);
    const std::vector<int> special = tok->encode_with_special(chat);
    EXPECT_GT(plain.size(), special.size());
    for (int id : plain) EXPECT_NE(id, 1) << "plain text must not produce control tokens";
    ASSERT_GE(special.size(), 3u);
    EXPECT_EQ(special.front(), 1);
    EXPECT_EQ(special.back(), 2);
    EXPECT_EQ(tok->decode(plain), chat);
    EXPECT_EQ(tok->decode(special), chat);
}

TEST(Tokenizer, AddBosAndEmptyText) {
    REQUIRE_SMOLLM2(tok);
    EXPECT_TRUE(tok->encode("").empty());
    EXPECT_TRUE(tok->encode_with_special("").empty());
    EXPECT_EQ(tok->encode("", true), std::vector<int>{1});
    const std::vector<int> with = tok->encode("hello", true);
    const std::vector<int> without = tok->encode("hello");
    ASSERT_EQ(with.size(), without.size() + 1);
    EXPECT_EQ(with[0], 1);
    EXPECT_EQ(std::vector<int>(with.begin() + 1, with.end()), without);
    EXPECT_EQ(tok->decode({}), "");
}

TEST(Tokenizer, RandomBytesRoundTripOnSmolLM2) {
    REQUIRE_SMOLLM2(tok);
    // SmolLM2's vocabulary has no token for 21 bytes that never occur in
    // UTF-8 text or are rare C0 controls; everything else must come back intact.
    std::vector<int> missing;
    std::vector<unsigned char> representable;
    for (int b = 0; b < 256; ++b) {
        const std::string s(1, static_cast<char>(b));
        if (tok->decode(tok->encode(s)) == s)
            representable.push_back(static_cast<unsigned char>(b));
        else
            missing.push_back(b);
    }
    EXPECT_EQ(missing, (std::vector<int>{0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5,
                                         0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF}));
    // Such a byte becomes U+FFFD, as llama.cpp writes it: SmolLM2's declared unk
    // is <|endoftext|>, a control token that must not appear inside a prompt.
    EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b\x04")), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");

    std::mt19937 rng(1234);
    std::uniform_int_distribution<size_t> pick_byte(0, representable.size() - 1);
    for (int i = 0; i < 300; ++i) {
        std::string s(1 + i % 97, '\0');
        for (char& c : s) c = static_cast<char>(representable[pick_byte(rng)]);
        EXPECT_EQ(tok->decode(tok->encode(s)), s) << "random string " << i;
        EXPECT_EQ(tok->decode(tok->encode_with_special(s)), s) << "random string " << i;
    }
    // Random mixes of valid UTF-8 pieces from every class, with bad bytes between.
    const std::vector<std::string> parts = {"a", "Z", "é", "ß", "Ω", "я", "中", "😀", "1", "٣", "½", " ", "  ",
                                            "\t", "\n", "\r\n", "'s", "'LL", ".", "!!", "\xC3", "\x80", "\xE2",
                                            "\xF0\x9F", "\u0301", "\u00A0", "<|im_end|>"};
    std::uniform_int_distribution<size_t> pick(0, parts.size() - 1);
    for (int i = 0; i < 300; ++i) {
        std::string s;
        for (int j = 0; j < 1 + i % 40; ++j) s += parts[pick(rng)];
        EXPECT_EQ(tok->decode(tok->encode(s)), s) << "mixed string " << i;
    }
}

TEST(Tokenizer, EncodeSpeedOnLongEnglishText) {
    REQUIRE_SMOLLM2(tok);
    // Several megabytes of English-like prose with varied words, so that the
    // measurement is of BPE work and not of one repeated sentence.
    const std::vector<std::string> words = {
        "the", "attention", "sparse", "block", "selection", "model", "token", "query", "keys", "values",
        "probability", "of", "and", "a", "to", "in", "is", "that", "layer", "budget", "recall", "mass",
        "kernel", "profiler", "visualizer", "throughput", "latency", "context", "window", "retrieval",
        "needle", "haystack", "perplexity", "benchmark", "engineers", "deciding", "whether", "switch"};
    std::mt19937 rng(7);
    std::uniform_int_distribution<size_t> pick(0, words.size() - 1);
    std::uniform_int_distribution<int> suffix(0, 9999);
    std::string text;
    while (text.size() < (4u << 20)) {
        for (int i = 0; i < 12; ++i) {
            text += words[pick(rng)];
            if (i == 5) text += std::to_string(suffix(rng));
            text += ' ';
        }
        text += "It's done.\n";
    }
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok->encode(text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ speed    ] encode: %.2f MB in %.3f s = %.1f MB/s, %.0f tokens/s (%zu tokens)\n",
                text.size() / 1e6, seconds, text.size() / 1e6 / seconds, ids.size() / seconds, ids.size());
    EXPECT_EQ(tok->decode(ids), text);
}

TEST(Tokenizer, PreTokenizersMatchRegexReference) {
    const nlohmann::json fixture = load_fixture();
    int checked = 0;
    for (const auto& c : fixture["pre_tokenizer_cases"]) {
        const std::string text = c["text"];
        const std::vector<std::string> want = c["pieces"];
        EXPECT_EQ(msa::pre_tokenize(text, c["pre"]), want) << "pre " << c["pre"] << " on " << c["text"].dump();
        ++checked;
    }
    EXPECT_EQ(checked, 24);
}

TEST(Tokenizer, PreTokenizerSplitsByFamily) {
    using V = std::vector<std::string>;
    EXPECT_EQ(msa::pre_tokenize("abc 12345 x", "gpt2"), (V{"abc", " 12345", " x"}));
    EXPECT_EQ(msa::pre_tokenize("abc 12345 x", "smollm"), (V{"abc", " ", "1", "2", "3", "4", "5", " x"}));
    EXPECT_EQ(msa::pre_tokenize("abc 12345 x", "llama-bpe"), (V{"abc", " ", "123", "45", " x"}));
    EXPECT_EQ(msa::pre_tokenize("abc 12345 x", "qwen2"), (V{"abc", " ", "1", "2", "3", "4", "5", " x"}));
    EXPECT_EQ(msa::pre_tokenize("I'M", "gpt2"), (V{"I", "'", "M"}));
    EXPECT_EQ(msa::pre_tokenize("I'M", "llama-bpe"), (V{"I", "'M"}));
    EXPECT_EQ(msa::pre_tokenize("a   b", "gpt2"), (V{"a", "  ", " b"}));
    EXPECT_EQ(msa::pre_tokenize("a  ", "gpt2"), (V{"a", "  "}));
    EXPECT_TRUE(msa::pre_tokenize("", "smollm").empty());
    // Bad bytes are characters of their own class-less kind and are never lost.
    const std::string bad = "ab\xFF\xC3 cd\xE2\x82";
    for (const char* pre : {"gpt2", "default", "smollm", "llama-bpe", "qwen2"}) {
        std::string joined;
        for (const std::string& p : msa::pre_tokenize(bad, pre)) joined += p;
        EXPECT_EQ(joined, bad) << pre;
    }
}

TEST(Tokenizer, MergesApplyByRankLeftmostFirst) {
    // ab has a better rank than bc, so "abc" -> [ab][c]; "aaa" takes the left pair first.
    const msa::Vocabulary v = tiny_vocabulary({{"a", "b"}, {"b", "c"}, {"a", "a"}, {"ab", "c"}});
    const msa::Tokenizer tok(v);
    const int ab = 256, aa = 258, abc = 259;
    EXPECT_EQ(tok.encode("abc"), (std::vector<int>{abc}));
    EXPECT_EQ(tok.encode("bcab"), (std::vector<int>{257, ab}));
    EXPECT_EQ(tok.encode("aaa"), (std::vector<int>{aa, 'a'}));
    EXPECT_EQ(tok.encode("aaaa"), (std::vector<int>{aa, aa}));
    EXPECT_EQ(tok.encode(" a"), (std::vector<int>{' ', 'a'}));
    EXPECT_EQ(tok.token_text(abc), "abc");
    EXPECT_EQ(tok.size(), 260);
}

TEST(Tokenizer, MergeResultOutsideVocabularyFallsBackToBytes) {
    msa::Vocabulary v = tiny_vocabulary({{"x", "y"}});
    v.tokens.pop_back();  // "xy" is merged but is no token
    v.token_type.pop_back();
    const msa::Tokenizer tok(v);
    EXPECT_EQ(tok.encode("xyz"), (std::vector<int>{'x', 'y', 'z'}));
}

TEST(Tokenizer, LongPieceHasNoQuadraticBlowUp) {
    const msa::Tokenizer tok(tiny_vocabulary({{"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"}}));
    const std::string s(200000, 'a');  // one pre-token of 200k symbols
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok.encode(s);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(ids.size(), 200000u / 8);
    EXPECT_EQ(tok.decode(ids), s);
    EXPECT_LT(seconds, 2.0);
}

TEST(Tokenizer, RandomBytesRoundTripOnEveryPreTokenizer) {
    std::mt19937 rng(99);
    for (const char* pre : {"gpt2", "default", "smollm", "llama-bpe", "qwen2"}) {
        const msa::Tokenizer tok(tiny_vocabulary({{" ", "t"}, {"h", "e"}, {" t", "he"}, {"\xC3", "\xA9"}}, pre));
        for (int i = 0; i < 200; ++i) {
            const std::string s = random_bytes(rng, static_cast<size_t>(i % 64));
            ASSERT_EQ(tok.decode(tok.encode(s)), s) << pre << " string " << i;
        }
        EXPECT_EQ(tok.encode(" the"), (std::vector<int>{258})) << pre;
    }
}

TEST(Tokenizer, UserDefinedTokensMatchInPlainTextControlOnlyOnRequest) {
    msa::Vocabulary v = tiny_vocabulary({});
    v.tokens.push_back("<ctl>");
    v.token_type.push_back(3);
    v.tokens.push_back("[tag]");
    v.token_type.push_back(4);
    v.tokens.push_back("<ctl>x");  // longer control token wins over its prefix
    v.token_type.push_back(3);
    v.bos_id = 256;
    const msa::Tokenizer tok(v);
    EXPECT_EQ(tok.encode("a[tag]"), (std::vector<int>{'a', 257}));
    EXPECT_EQ(tok.encode("<ctl>").size(), 5u);
    EXPECT_EQ(tok.encode_with_special("<ctl>y<ctl>x"), (std::vector<int>{256, 'y', 258}));
    EXPECT_EQ(tok.encode("", true), (std::vector<int>{256}));
    EXPECT_EQ(tok.decode({256, 257}), "<ctl>[tag]");
}

TEST(Tokenizer, RejectsBadVocabularies) {
    msa::Vocabulary unknown_pre = tiny_vocabulary({});
    unknown_pre.pre = "klingon-bpe";
    try {
        msa::Tokenizer tok(unknown_pre);
        FAIL() << "unknown pre accepted";
    } catch (const msa::InputError& e) {
        EXPECT_NE(std::string(e.what()).find("klingon-bpe"), std::string::npos) << e.what();
    }
    EXPECT_THROW(msa::pre_tokenize("x", "klingon-bpe"), msa::InputError);

    msa::Vocabulary missing_byte = tiny_vocabulary({});
    missing_byte.tokens[0x41] = "A_not_a_byte";  // 'A' no longer has a token
    try {
        msa::Tokenizer tok(missing_byte);
        FAIL() << "vocabulary without byte token accepted";
    } catch (const msa::InputError& e) {
        EXPECT_NE(std::string(e.what()).find("0x41"), std::string::npos) << e.what();
    }

    // Bytes that never occur in UTF-8 text may be missing: they become the unknown token.
    msa::Vocabulary no_ff = tiny_vocabulary({});
    no_ff.tokens[0xFF] = "<unk>";
    no_ff.token_type[0xFF] = 2;
    no_ff.unk_id = 0xFF;
    const msa::Tokenizer without_ff(no_ff);
    EXPECT_EQ(without_ff.encode("a\xFF"), (std::vector<int>{'a', 0xFF}));
    EXPECT_EQ(without_ff.encode(std::string(1 << 20, '\xFF')).size(), 1u << 20);  // one long piece, no recursion
    no_ff.token_type[0xFF] = 3;  // a control token is never used as a stand-in
    const msa::Tokenizer control_unk(no_ff);
    EXPECT_EQ(control_unk.decode(control_unk.encode("a\xFF")), "a\xEF\xBF\xBD");

    msa::Vocabulary sentencepiece = tiny_vocabulary({});
    sentencepiece.model = "llama";
    EXPECT_THROW(msa::Tokenizer{sentencepiece}, msa::InputError);

    msa::Vocabulary empty;
    EXPECT_THROW(msa::Tokenizer{empty}, msa::InputError);
}

TEST(Tokenizer, MovesKeepWorking) {
    msa::Tokenizer a(tiny_vocabulary({{"h", "i"}}));
    msa::Tokenizer b(std::move(a));
    EXPECT_EQ(b.encode("hi"), std::vector<int>{256});
    msa::Tokenizer c(tiny_vocabulary({}));
    c = std::move(b);
    EXPECT_EQ(c.encode("hi"), std::vector<int>{256});
}

TEST(Unicode, ClassesAndDecoding) {
    using namespace msa::unicode;
    EXPECT_TRUE(is_letter('a'));
    EXPECT_TRUE(is_letter(0x4E2D));   // 中
    EXPECT_TRUE(is_letter(0x20000));  // CJK Extension B, beyond the flat table
    EXPECT_TRUE(is_number('7'));
    EXPECT_TRUE(is_number(0x0663));   // Arabic-Indic three
    EXPECT_TRUE(is_number(0x00BD));   // ½ (No)
    EXPECT_TRUE(is_white_space(0x3000));
    EXPECT_TRUE(is_white_space(0x85));
    EXPECT_FALSE(is_white_space(0x1C));  // str.isspace() says yes; White_Space says no
    EXPECT_FALSE(is_white_space(0x200B));
    EXPECT_EQ(codepoint_class(0x0301), 0);  // combining mark
    EXPECT_EQ(codepoint_class(0x1F600), 0); // emoji
    EXPECT_EQ(codepoint_class('.'), 0);

    EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80", 0).cp, 0x1F600u);
    EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80", 0).length, 4u);
    for (const char* bad : {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\xFF"}) {
        const DecodedCodepoint d = decode_utf8(bad, 0);
        EXPECT_FALSE(d.valid) << bad;
        EXPECT_EQ(d.length, 1u);
    }
    EXPECT_EQ(to_utf8(0x20AC), "\xE2\x82\xAC");
}
