// GGUF parsing: every metadata type, alignment, and malformed files, each of
// which must end in msa::InputError (these run under ASan/UBSan in CI too).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/errors.h"
#include "core/gguf.h"
#include "core/model.h"
#include "tests/support/tiny_model.h"

using namespace msa;

namespace {

struct TempDir {
    std::string path = make_temp_dir("msascope-gguf");
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

std::vector<uint8_t> le64(uint64_t v) {
    std::vector<uint8_t> out;
    for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
    return out;
}

// One small valid file: a few metadata keys and two tensors.
GgufWriter small_writer() {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
    std::vector<float> values(64);
    for (int i = 0; i < 64; ++i) values[i] = float(i) - 20.5f;
    w.add_tensor("first.weight", {32, 2}, 0, quantize(WeightType::F32, values.data(), 64));
    w.add_tensor("second.weight", {32}, 8, quantize(WeightType::Q8_0, values.data(), 32));
    return w;
}

void expect_input_error(const std::vector<uint8_t>& bytes, const std::string& path, const std::string& needle = "") {
    write_file(path, bytes);
    try {
        GgufFile file(path);
        ADD_FAILURE() << "no InputError for a malformed file (" << needle << ")";
    } catch (const InputError& e) {
        std::string message = e.what();
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
        if (!needle.empty()) {
            EXPECT_NE(message.find(needle), std::string::npos) << message;
        }
    }
}

// Offset of the first tensor info (after the metadata) in small_writer()'s bytes.
size_t first_tensor_info_offset(const GgufWriter& w) {
    size_t at = 24;
    for (const auto& [key, value] : w.kv) at += 8 + key.size() + value.size();
    return at;
}

}  // namespace

TEST(Gguf, ReadsEveryMetadataType) {
    TempDir dir;
    GgufWriter w;
    w.add_raw("u8", 0, {200});
    w.add_raw("i8", 1, {0xFE});
    w.add_raw("u16", 2, {0x34, 0x12});
    w.add_raw("i16", 3, {0xFF, 0xFF});
    w.add_u32("u32", 4000000000u);
    w.add_i32("i32", -7);
    w.add_f32("f32", 0.25f);
    w.add_bool("flag", true);
    w.add_string("name", "hello");
    w.add_raw("u64", 10, le64(1ull << 40));
    w.add_raw("i64", 11, le64(uint64_t(-5)));
    double pi = 3.5;
    std::vector<uint8_t> pi_bytes(8);
    std::memcpy(pi_bytes.data(), &pi, 8);
    w.add_raw("f64", 12, pi_bytes);
    w.add_i32_array("ints", {1, -2, 3});
    // array of arrays of uint8: [[1, 2], []]
    std::vector<uint8_t> nested = {9, 0, 0, 0};  // element type ARRAY
    for (uint8_t b : le64(2)) nested.push_back(b);
    for (uint8_t b : std::vector<uint8_t>{0, 0, 0, 0}) nested.push_back(b);  // inner element type UINT8
    for (uint8_t b : le64(2)) nested.push_back(b);
    nested.push_back(1);
    nested.push_back(2);
    for (uint8_t b : std::vector<uint8_t>{0, 0, 0, 0}) nested.push_back(b);
    for (uint8_t b : le64(0)) nested.push_back(b);
    w.add_raw("nested", 9, nested);
    w.write(dir.file("m.gguf"));

    GgufFile f(dir.file("m.gguf"));
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.get_int("u8", 0), 200);
    EXPECT_EQ(f.get_int("i8", 0), -2);
    EXPECT_EQ(f.get_int("u16", 0), 0x1234);
    EXPECT_EQ(f.get_int("i16", 0), -1);
    EXPECT_EQ(f.get_int("u32", 0), 4000000000ll);
    EXPECT_EQ(f.get_int("i32", 0), -7);
    EXPECT_EQ(f.get_double("f32", 0), 0.25);
    EXPECT_TRUE(f.get_bool("flag", false));
    EXPECT_EQ(f.get_string("name", ""), "hello");
    EXPECT_EQ(f.get_int("u64", 0), 1ll << 40);
    EXPECT_EQ(f.get_int("i64", 0), -5);
    EXPECT_EQ(f.get_double("f64", 0), 3.5);
    EXPECT_EQ(f.get_int("absent", 17), 17);
    const GgufValue* ints = f.find("ints");
    ASSERT_NE(ints, nullptr);
    ASSERT_EQ(ints->array.size(), 3u);
    EXPECT_EQ(ints->array[1].i, -2);
    const GgufValue* n = f.find("nested");
    ASSERT_NE(n, nullptr);
    ASSERT_EQ(n->array.size(), 2u);
    ASSERT_EQ(n->array[0].array.size(), 2u);
    EXPECT_EQ(n->array[0].array[1].u, 2u);
    EXPECT_TRUE(n->array[1].array.empty());
    EXPECT_THROW(f.get_string("u8", ""), InputError);  // wrong type
    EXPECT_THROW(f.get_int("name", 0), InputError);
    EXPECT_THROW(f.require_int("missing"), InputError);
}

TEST(Gguf, TensorInfosOffsetsAndAlignment) {
    TempDir dir;
    for (uint64_t alignment : {32u, 64u, 8u}) {
        for (uint32_t version : {2u, 3u}) {
            GgufWriter w = small_writer();
            w.alignment = alignment;
            w.version = version;
            w.write(dir.file("a.gguf"));
            GgufFile f(dir.file("a.gguf"));
            EXPECT_EQ(f.alignment(), alignment);
            EXPECT_EQ(f.data_offset() % alignment, 0u);
            ASSERT_EQ(f.tensors().size(), 2u);
            const GgufTensorInfo* t = f.find_tensor("first.weight");
            ASSERT_NE(t, nullptr);
            EXPECT_EQ(t->n_elements, 64u);
            EXPECT_EQ(t->n_bytes, 256u);
            float value;
            std::memcpy(&value, f.tensor_data(*t) + 4 * 33, 4);
            EXPECT_EQ(value, 33 - 20.5f);
            const GgufTensorInfo* q = f.find_tensor("second.weight");
            ASSERT_NE(q, nullptr);
            EXPECT_EQ(q->n_bytes, 34u);
            EXPECT_EQ(q->offset % alignment, 0u);
            EXPECT_EQ(f.find_tensor("absent"), nullptr);
        }
    }
}

TEST(Gguf, EveryTruncationIsAnInputError) {
    TempDir dir;
    const std::vector<uint8_t> good = small_writer().bytes();
    write_file(dir.file("good.gguf"), good);
    EXPECT_NO_THROW(GgufFile{dir.file("good.gguf")});
    for (size_t cut = 0; cut < good.size(); ++cut) {
        std::vector<uint8_t> truncated(good.begin(), good.begin() + cut);
        write_file(dir.file("cut.gguf"), truncated);
        EXPECT_THROW(GgufFile{dir.file("cut.gguf")}, InputError) << "cut at " << cut << " of " << good.size();
    }
}

TEST(Gguf, MalformedHeaders) {
    TempDir dir;
    const std::string path = dir.file("bad.gguf");
    const GgufWriter base = small_writer();
    const std::vector<uint8_t> good = base.bytes();

    auto patched = [&](size_t at, const std::vector<uint8_t>& bytes) {
        std::vector<uint8_t> b = good;
        std::copy(bytes.begin(), bytes.end(), b.begin() + at);
        return b;
    };
    expect_input_error(patched(0, {'G', 'G', 'U', 'X'}), path, "magic");
    expect_input_error(patched(4, {1, 0, 0, 0}), path, "version 1");
    expect_input_error(patched(4, {9, 0, 0, 0}), path, "version 9");
    expect_input_error(patched(8, le64(1ull << 60)), path, "tensor count");
    expect_input_error(patched(16, le64(1ull << 40)), path, "metadata count");
    expect_input_error(patched(24, le64(1ull << 50)), path, "file ends");  // first key's length past the end
    write_file(path, {});
    EXPECT_THROW(GgufFile{path}, InputError);
    EXPECT_THROW(GgufFile{dir.file("does-not-exist.gguf")}, InputError);
    EXPECT_THROW(GgufFile{dir.path}, InputError);  // a directory

    // Metadata value problems.
    {
        GgufWriter w = small_writer();
        w.add_raw("weird", 13, {0});
        expect_input_error(w.bytes(), path, "unknown value type");
    }
    {
        GgufWriter w = small_writer();
        w.add_raw("flag", 7, {2});
        expect_input_error(w.bytes(), path, "bool");
    }
    {
        GgufWriter w = small_writer();
        w.add_string("general.architecture", "again");
        expect_input_error(w.bytes(), path, "twice");
    }
    {
        GgufWriter w = small_writer();
        std::vector<uint8_t> huge = {4, 0, 0, 0};  // uint32 elements
        for (uint8_t b : le64(1ull << 61)) huge.push_back(b);
        w.add_raw("huge", 9, huge);
        expect_input_error(w.bytes(), path, "array elements");
    }
    {
        GgufWriter w = small_writer();
        std::vector<uint8_t> deep;
        for (int level = 0; level < 20; ++level) {
            for (uint8_t b : std::vector<uint8_t>{9, 0, 0, 0}) deep.push_back(b);
            for (uint8_t b : le64(1)) deep.push_back(b);
        }
        w.add_raw("deep", 9, deep);
        expect_input_error(w.bytes(), path, "deeply");
    }
    {
        GgufWriter w = small_writer();
        w.add_u32("general.alignment", 3);
        expect_input_error(w.bytes(), path, "alignment");
    }
}

TEST(Gguf, MalformedTensorInfos) {
    TempDir dir;
    const std::string path = dir.file("bad.gguf");
    const GgufWriter base = small_writer();
    const size_t info = first_tensor_info_offset(base);
    const size_t name_len = std::string("first.weight").size();
    const size_t n_dims_at = info + 8 + name_len, dim0_at = n_dims_at + 4, dim1_at = dim0_at + 8;
    const size_t type_at = dim1_at + 8, offset_at = type_at + 4;
    auto patched = [&](size_t at, const std::vector<uint8_t>& bytes) {
        std::vector<uint8_t> b = base.bytes();
        std::copy(bytes.begin(), bytes.end(), b.begin() + at);
        return b;
    };
    expect_input_error(patched(info, le64(1ull << 40)), path, "file ends");  // name length past the end
    expect_input_error(patched(n_dims_at, {5, 0, 0, 0}), path, "dimensions");
    expect_input_error(patched(n_dims_at, {0, 0, 0, 0}), path, "dimensions");
    expect_input_error(patched(dim1_at, le64(1ull << 62)), path, "");                // size past the end
    expect_input_error(patched(dim0_at, le64(1ull << 61)), path, "");                // element count overflows with dim1
    expect_input_error(patched(offset_at, le64(1ull << 40)), path, "past the end");
    expect_input_error(patched(offset_at, le64(uint64_t(-32))), path, "past the end");
    expect_input_error(patched(offset_at, le64(3)), path, "alignment");
    {
        // Q8_0 rows must be whole blocks of 32.
        GgufWriter w = small_writer();
        w.tensors[1].dims = {16, 2};
        expect_input_error(w.bytes(), path, "block size");
    }
    {
        GgufWriter w = small_writer();
        w.tensors[1].name = "first.weight";
        expect_input_error(w.bytes(), path, "twice");
    }
    {
        // An unknown type parses (its size cannot be checked) but its data cannot be used.
        GgufWriter w = small_writer();
        w.tensors[1].type = 77;
        write_file(path, w.bytes());
        GgufFile f(path);
        const GgufTensorInfo* t = f.find_tensor("second.weight");
        ASSERT_NE(t, nullptr);
        EXPECT_FALSE(t->known_type);
        EXPECT_THROW(f.tensor_data(*t), InputError);
    }
}

TEST(Gguf, LoadModelRejectsBadGgufFiles) {
    TempDir dir;
    const std::string path = dir.file("model.gguf");
    Model model = make_random_model(tiny_config(), 1);
    write_gguf(model, path, WeightType::Q8_0);
    const std::vector<uint8_t> good = read_file(path);
    // Cuts through the header, the vocabulary, the tensor infos and the data.
    for (size_t cut : {size_t(0), size_t(3), size_t(23), size_t(100), size_t(2000), good.size() / 3, good.size() / 2,
                       good.size() - 1000, good.size() - 1}) {
        write_file(path, std::vector<uint8_t>(good.begin(), good.begin() + std::min(cut, good.size() - 1)));
        EXPECT_THROW(load_model(path), InputError) << "cut " << cut;
        EXPECT_THROW(load_model_config(path), InputError) << "cut " << cut;
    }
    write_file(path, {'n', 'o', 'p', 'e', 0, 0, 0, 0});
    EXPECT_THROW(load_model(path), InputError);
    EXPECT_THROW(load_model(dir.file("absent.gguf")), InputError);
}
