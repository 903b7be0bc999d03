// Session files: round trips, several runs per file, bad input, FILE:RUN,
// BLOB codecs, compare and export.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "sessions/blob.h"
#include "sessions/compare.h"
#include "sessions/export.h"
#include "sessions/random_run.h"
#include "sessions/session.h"

namespace fs = std::filesystem;
using namespace msa;
using namespace msa::sessions;

namespace {

// A session path unique to this process and test, with its WAL/SHM removed
// before and after.
struct TempSession {
    std::string path;
    explicit TempSession(const std::string& name) {
        path = (fs::temp_directory_path() / ("msascope_sess_" + std::to_string(::getpid()) + "_" + name + ".db")).string();
        clean();
    }
    ~TempSession() { clean(); }
    void clean() const {
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
    }
};

void sql(const std::string& path, const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &error);
    const std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
}

// Rewrites one capture BLOB of every run's `layer` through `edit`, in C++ so
// the bytes stay a BLOB (SQL's || would turn them into TEXT).
template <typename Edit>
void patch_capture_blob(const std::string& path, const std::string& column, int layer, Edit edit) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* read = nullptr;
    const std::string select = "SELECT rowid, " + column + " FROM captures WHERE layer = ?";
    ASSERT_EQ(sqlite3_prepare_v2(db, select.c_str(), -1, &read, nullptr), SQLITE_OK);
    sqlite3_bind_int(read, 1, layer);
    std::vector<std::pair<int64_t, std::vector<uint8_t>>> rows;
    while (sqlite3_step(read) == SQLITE_ROW) {
        const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(read, 1));
        rows.emplace_back(sqlite3_column_int64(read, 0), std::vector<uint8_t>(p, p + sqlite3_column_bytes(read, 1)));
    }
    sqlite3_finalize(read);
    ASSERT_FALSE(rows.empty());
    const std::string update = "UPDATE captures SET " + column + " = ? WHERE rowid = ?";
    for (auto& [rowid, bytes] : rows) {
        edit(bytes);
        sqlite3_stmt* write = nullptr;
        ASSERT_EQ(sqlite3_prepare_v2(db, update.c_str(), -1, &write, nullptr), SQLITE_OK);
        sqlite3_bind_blob(write, 1, bytes.data(), int(bytes.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(write, 2, rowid);
        ASSERT_EQ(sqlite3_step(write), SQLITE_DONE);
        sqlite3_finalize(write);
    }
    sqlite3_close(db);
}

// Runs `fn`, expects InputError whose message is one line and contains `needle`.
template <typename Fn>
void expect_input_error(Fn fn, const std::string& needle) {
    try {
        fn();
        ADD_FAILURE() << "expected InputError containing '" << needle << "'";
    } catch (const InputError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(needle), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    }
}

RandomRunShape small_shape() {
    RandomRunShape s;
    s.n_tokens = 600;
    s.n_layers = 4;
    s.block = 64;
    s.k = 4;
    s.kernels_per_layer = 7;
    s.full_layers = {1, 3};
    return s;
}

void expect_same_double(double a, double b, const std::string& what) {
    if (std::isnan(a)) EXPECT_TRUE(std::isnan(b)) << what;
    else EXPECT_EQ(a, b) << what;
}

void expect_close_floats(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isinf(a[i])) {
            ASSERT_EQ(a[i], b[i]) << what << " at " << i;
        } else {
            // float16 keeps 11 significant bits: relative error <= 2^-11, plus subnormal slack.
            ASSERT_NEAR(a[i], b[i], std::fabs(a[i]) * 4.9e-4 + 6e-8) << what << " at " << i;
        }
    }
}

void expect_same_run(const RunResult& a, const RunResult& b) {
    EXPECT_EQ(a.model_path, b.model_path);
    EXPECT_EQ(a.model_hash, b.model_hash);
    EXPECT_EQ(a.model_format, b.model_format);
    EXPECT_EQ(a.quantization, b.quantization);
    EXPECT_EQ(a.model_config.n_layers, b.model_config.n_layers);
    EXPECT_EQ(a.model_config.n_heads, b.model_config.n_heads);
    EXPECT_EQ(a.model_config.rope_theta, b.model_config.rope_theta);
    EXPECT_EQ(a.model_config.tied_embeddings, b.model_config.tied_embeddings);
    EXPECT_EQ(a.text, b.text);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.config.k, b.config.k);
    EXPECT_EQ(a.config.block, b.config.block);
    EXPECT_EQ(a.config.scorer, b.config.scorer);
    EXPECT_EQ(a.config.sink, b.config.sink);
    EXPECT_EQ(a.config.index, b.config.index);
    EXPECT_EQ(a.config.seed, b.config.seed);
    EXPECT_EQ(a.backend, b.backend);
    EXPECT_EQ(a.device, b.device);
    EXPECT_EQ(a.threads, b.threads);
    EXPECT_EQ(a.started_unix_ms, b.started_unix_ms);
    EXPECT_EQ(a.finished_unix_ms, b.finished_unix_ms);
    expect_same_double(a.perplexity_dense, b.perplexity_dense, "perplexity_dense");
    expect_same_double(a.perplexity_msa, b.perplexity_msa, "perplexity_msa");
    expect_same_double(a.perplexity_random, b.perplexity_random, "perplexity_random");
    expect_same_double(a.needle_hit_rate, b.needle_hit_rate, "needle_hit_rate");
    EXPECT_EQ(a.dense_attention_flops, b.dense_attention_flops);
    EXPECT_EQ(a.msa_attention_flops, b.msa_attention_flops);
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i) {
        EXPECT_EQ(a.layers[i].layer, b.layers[i].layer);
        EXPECT_EQ(a.layers[i].recall_mean, b.layers[i].recall_mean);
        EXPECT_EQ(a.layers[i].recall_p5, b.layers[i].recall_p5);
        EXPECT_EQ(a.layers[i].recall_p50, b.layers[i].recall_p50);
        EXPECT_EQ(a.layers[i].output_rel_error, b.layers[i].output_rel_error);
        EXPECT_EQ(a.layers[i].group_recall_mean, b.layers[i].group_recall_mean);
        EXPECT_EQ(a.layers[i].head_recall_mean, b.layers[i].head_recall_mean);
        EXPECT_EQ(a.layers[i].head_rel_error, b.layers[i].head_rel_error);
    }
    ASSERT_EQ(a.kernels.size(), b.kernels.size());
    for (size_t i = 0; i < a.kernels.size(); ++i) {
        const KernelRecord &x = a.kernels[i], &y = b.kernels[i];
        EXPECT_EQ(x.name, y.name);
        EXPECT_EQ(x.phase, y.phase);
        for (int d = 0; d < 3; ++d) {
            EXPECT_EQ(x.grid[d], y.grid[d]);
            EXPECT_EQ(x.block[d], y.block[d]);
        }
        EXPECT_EQ(x.registers, y.registers);
        EXPECT_EQ(x.shared_bytes, y.shared_bytes);
        EXPECT_EQ(x.start_ns, y.start_ns);
        EXPECT_EQ(x.end_ns, y.end_ns);
        EXPECT_EQ(x.stream, y.stream);
        EXPECT_EQ(x.correlation_id, y.correlation_id);
        EXPECT_EQ(x.flops, y.flops);
        EXPECT_EQ(x.bytes, y.bytes);
        EXPECT_EQ(x.layer, y.layer);
    }
    ASSERT_EQ(a.timings.size(), b.timings.size());
    for (size_t i = 0; i < a.timings.size(); ++i) {
        EXPECT_EQ(a.timings[i].name, b.timings[i].name);
        EXPECT_EQ(a.timings[i].ms, b.timings[i].ms);
    }
    ASSERT_EQ(a.needles.size(), b.needles.size());
    for (size_t i = 0; i < a.needles.size(); ++i) {
        EXPECT_EQ(a.needles[i].key, b.needles[i].key);
        EXPECT_EQ(a.needles[i].value, b.needles[i].value);
        EXPECT_EQ(a.needles[i].token_begin, b.needles[i].token_begin);
        EXPECT_EQ(a.needles[i].token_end, b.needles[i].token_end);
        EXPECT_EQ(a.needles[i].question_token, b.needles[i].question_token);
    }
    EXPECT_EQ(a.warnings, b.warnings);
}

void expect_same_capture(const LayerCapture& a, const LayerCapture& b) {
    EXPECT_EQ(a.layer, b.layer);
    EXPECT_EQ(a.selection.n_tokens, b.selection.n_tokens);
    EXPECT_EQ(a.selection.n_groups, b.selection.n_groups);
    EXPECT_EQ(a.selection.slots, b.selection.slots);
    EXPECT_EQ(a.selection.blocks, b.selection.blocks);
    EXPECT_EQ(a.scores.n_tokens, b.scores.n_tokens);
    EXPECT_EQ(a.scores.n_groups, b.scores.n_groups);
    EXPECT_EQ(a.scores.n_blocks, b.scores.n_blocks);
    expect_close_floats(a.scores.values, b.scores.values, "scores");
    EXPECT_EQ(a.mass.n_heads, b.mass.n_heads);
    EXPECT_EQ(a.mass.n_blocks, b.mass.n_blocks);
    expect_close_floats(a.mass.values, b.mass.values, "mass");
    expect_close_floats(a.recall, b.recall, "recall");
    expect_close_floats(a.q, b.q, "q");
    expect_close_floats(a.k, b.k, "k");
    expect_close_floats(a.v, b.v, "v");
    EXPECT_EQ(a.qkv_shape.n_tokens, b.qkv_shape.n_tokens);
    EXPECT_EQ(a.qkv_shape.head_dim, b.qkv_shape.head_dim);
    EXPECT_EQ(a.qkv_shape.n_heads, b.qkv_shape.n_heads);
    EXPECT_EQ(a.qkv_shape.n_kv_heads, b.qkv_shape.n_kv_heads);
}

}  // namespace

// ---------------------------------------------------------------- BLOB codecs

TEST(SessionBlob, HalfRoundTripsEveryHalfValue) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = half_to_float(uint16_t(h));
        if (std::isnan(f)) {
            EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f))));
            continue;
        }
        ASSERT_EQ(float_to_half(f), h) << "half 0x" << std::hex << h;
    }
}

TEST(SessionBlob, HalfRoundsToNearestEvenAndKeepsSpecials) {
    EXPECT_EQ(half_to_float(float_to_half(1.0f)), 1.0f);
    EXPECT_EQ(half_to_float(float_to_half(-2.5f)), -2.5f);
    EXPECT_EQ(half_to_float(float_to_half(65504.0f)), 65504.0f);
    EXPECT_TRUE(std::isinf(half_to_float(float_to_half(1e6f))));
    EXPECT_EQ(half_to_float(float_to_half(-INFINITY)), -INFINITY);
    EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
    EXPECT_EQ(half_to_float(float_to_half(1.0f + std::ldexp(1.0f, -11))), 1.0f);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
    EXPECT_EQ(half_to_float(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
    EXPECT_EQ(half_to_float(float_to_half(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // smallest subnormal
    EXPECT_EQ(half_to_float(float_to_half(std::ldexp(1.0f, -26))), 0.0f);
}

TEST(SessionBlob, HalfOrSingleFallsBackToSingleOnlyWhenAValueWouldOverflow) {
    const std::vector<float> small = {0.1f, -3.25f, 65504.0f, 1e-3f};
    std::vector<uint8_t> blob = encode_f16_or_f32(small, {4});
    EXPECT_EQ(read_blob_info(blob.data(), blob.size()).dtype, DType::f16);
    const std::vector<float> back = decode_floats(blob.data(), blob.size());
    for (size_t i = 0; i < small.size(); ++i) EXPECT_NEAR(back[i], small[i], std::fabs(small[i]) * 4.9e-4);

    for (float outlier : {70000.0f, -1e6f, float(INFINITY), float(NAN)}) {
        const std::vector<float> wide = {0.1f, outlier};
        blob = encode_f16_or_f32(wide, {2});
        EXPECT_EQ(read_blob_info(blob.data(), blob.size()).dtype, DType::f32) << outlier;
        const std::vector<float> exact = decode_floats(blob.data(), blob.size());
        EXPECT_EQ(exact[0], 0.1f);
        EXPECT_TRUE(exact[1] == outlier || (std::isnan(exact[1]) && std::isnan(outlier))) << outlier;
    }
}

TEST(SessionBlob, SortedRowsCodecIsExactAndSmall) {
    RandomRunShape shape = small_shape();
    const LayerCapture c = random_capture(shape, 0, false, 7);
    const std::vector<uint32_t> dims = {uint32_t(c.selection.n_tokens), uint32_t(c.selection.n_groups),
                                        uint32_t(c.selection.slots)};
    const auto blob = encode_ids(c.selection.blocks, dims);
    EXPECT_EQ(read_blob_info(blob.data(), blob.size()).codec, Codec::sorted_rows);
    // Fewer bytes than int16 would take.
    EXPECT_LT(blob.size(), c.selection.blocks.size() * 2);
    std::vector<uint32_t> back_dims;
    EXPECT_EQ(decode_ints(blob.data(), blob.size(), &back_dims), c.selection.blocks);
    EXPECT_EQ(back_dims, dims);

    // Rows that break the sorted-ids invariant fall back to raw storage.
    std::vector<int32_t> unsorted = {3, 1, -1, 40000, 2, 0};
    const auto raw = encode_ids(unsorted, {2, 3});
    EXPECT_EQ(read_blob_info(raw.data(), raw.size()).codec, Codec::raw);
    EXPECT_EQ(read_blob_info(raw.data(), raw.size()).dtype, DType::i32);
    EXPECT_EQ(decode_ints(raw.data(), raw.size()), unsorted);
    std::vector<int32_t> small_unsorted = {3, 1, -1, 4, 2, 0};
    const auto raw16 = encode_ids(small_unsorted, {2, 3});
    EXPECT_EQ(read_blob_info(raw16.data(), raw16.size()).dtype, DType::i16);
    EXPECT_EQ(decode_ints(raw16.data(), raw16.size()), small_unsorted);
}

TEST(SessionBlob, DecodersRejectDamagedBlobsWithoutReadingPastThem) {
    RandomRunShape shape = small_shape();
    const LayerCapture c = random_capture(shape, 1, true, 3);
    const auto ids = encode_ids(c.selection.blocks, {uint32_t(c.selection.n_tokens), uint32_t(c.selection.n_groups),
                                                     uint32_t(c.selection.slots)});
    const auto floats = encode_f16(c.scores.values, {uint32_t(c.scores.n_tokens), uint32_t(c.scores.n_groups),
                                                     uint32_t(c.scores.n_blocks)});
    const std::vector<uint32_t> id_dims = {uint32_t(c.selection.n_tokens), uint32_t(c.selection.n_groups),
                                           uint32_t(c.selection.slots)};
    const std::vector<uint32_t> score_dims = {uint32_t(c.scores.n_tokens), uint32_t(c.scores.n_groups),
                                              uint32_t(c.scores.n_blocks)};
    // Truncations, header damage and random byte flips, decoded the way the
    // Reader does (with the shape its row expects): each must either decode to
    // that shape or throw BlobError; ASan runs catch any read past the buffer.
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 3000; ++trial) {
        const bool use_ids = trial % 2 == 0;
        std::vector<uint8_t> blob = use_ids ? ids : floats;
        const int mode = trial % 3;
        if (mode == 0) blob.resize(rng() % blob.size());
        if (mode == 1) blob[rng() % std::min<size_t>(blob.size(), 24)] ^= uint8_t(1 + rng() % 255);
        if (mode == 2)
            for (int f = 0; f < 4; ++f) blob[rng() % blob.size()] ^= uint8_t(1 + rng() % 255);
        // Copy into an exactly sized heap buffer so any overrun is a real out-of-bounds read.
        std::unique_ptr<uint8_t[]> exact(new uint8_t[blob.size() + 1]);
        std::memcpy(exact.get(), blob.data(), blob.size());
        try {
            std::vector<uint32_t> dims;
            if (use_ids) {
                const auto v = decode_ints(exact.get(), blob.size(), &dims, &id_dims);
                uint64_t n = 1;
                for (uint32_t d : dims) n *= d;
                EXPECT_EQ(v.size(), n);
            } else {
                const auto v = decode_floats(exact.get(), blob.size(), &dims, &score_dims);
                uint64_t n = 1;
                for (uint32_t d : dims) n *= d;
                EXPECT_EQ(v.size(), n);
            }
        } catch (const BlobError&) {
        }
    }
    std::vector<uint8_t> bad = floats;
    bad[0] = 'X';
    EXPECT_THROW(decode_floats(bad.data(), bad.size()), BlobError);
    bad = floats;
    bad.pop_back();
    EXPECT_THROW(decode_floats(bad.data(), bad.size()), BlobError);
    EXPECT_THROW(decode_floats(ids.data(), ids.size()), BlobError);  // ints are not floats
    // Without an expected shape, a header claiming absurd rows is refused before allocation.
    bad = ids;
    bad[16] = bad[17] = bad[18] = 0xff;  // slots -> ~16M
    EXPECT_THROW(decode_ints(bad.data(), bad.size()), BlobError);
    bad = ids;
    bad[8] = bad[9] = bad[10] = 0xff;  // n_tokens -> ~16M rows, more than the payload can hold
    EXPECT_THROW(decode_ints(bad.data(), bad.size()), BlobError);
}

// ---------------------------------------------------------------- round trips

TEST(Sessions, RoundTripOfARandomRun) {
    TempSession file("roundtrip");
    RunResult run = random_run(small_shape(), 11);
    // A capture with Q/K/V kept (the GUI's re-pooling input), stored as float16.
    LayerCapture& full = run.captures[1];
    full.qkv_shape = {600, 9, 3, 8};
    full.q.resize(600 * 9 * 8);
    full.k.resize(600 * 3 * 8);
    full.v.resize(600 * 3 * 8);
    for (size_t i = 0; i < full.q.size(); ++i) full.q[i] = std::sin(float(i)) * 3.3f;
    for (size_t i = 0; i < full.k.size(); ++i) full.k[i] = std::cos(float(i)), full.v[i] = float(i) * 1e-3f;
    int64_t id = 0;
    {
        Writer writer(file.path);
        id = writer.write_run(run);
    }
    Reader reader(file.path);
    EXPECT_EQ(reader.schema_version(), current_schema_version());
    EXPECT_EQ(reader.integrity_check(), "ok");
    const auto runs = reader.runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].id, id);
    EXPECT_EQ(runs[0].status, "complete");
    EXPECT_EQ(runs[0].kind, "run");
    EXPECT_EQ(runs[0].n_tokens, 600);
    EXPECT_EQ(runs[0].n_layers_stored, 4);
    EXPECT_EQ(runs[0].n_captures, 4);
    EXPECT_EQ(runs[0].n_kernels, 28);
    EXPECT_EQ(runs[0].config.k, 4);
    EXPECT_EQ(runs[0].backend, "cuda");
    double mean = 0;
    for (const auto& l : run.layers) mean += l.recall_mean / run.layers.size();
    EXPECT_NEAR(runs[0].recall_mean, mean, 1e-12);
    EXPECT_FALSE(runs[0].label.empty());

    const RunResult back = reader.load_run(id, true);
    expect_same_run(run, back);
    ASSERT_EQ(back.captures.size(), run.captures.size());
    for (size_t i = 0; i < run.captures.size(); ++i) expect_same_capture(run.captures[i], back.captures[i]);
    EXPECT_TRUE(reader.load_run(id, false).captures.empty());
    EXPECT_EQ(reader.captured_layers(id), (std::vector<int>{0, 1, 2, 3}));
    expect_same_capture(run.captures[3], reader.load_capture(id, 3));
    EXPECT_EQ(reader.load_selection(id, 2).blocks, run.captures[2].selection.blocks);
    EXPECT_TRUE(reader.load_capture(id, 0).scores.values.empty());  // selection-only layer
    expect_input_error([&] { reader.load_capture(id, 17); }, "no capture of layer 17");
}

TEST(Sessions, SeveralRunsAppendWithoutTouchingEarlierOnes) {
    TempSession file("several");
    std::vector<RunResult> runs;
    std::vector<int64_t> ids;
    for (uint64_t seed = 1; seed <= 3; ++seed) {
        runs.push_back(random_run(small_shape(), seed));
        runs.back().config.k = int(seed) + 2;
        Writer writer(file.path);  // a fresh writer each time: appending reopens the file
        ids.push_back(writer.write_run(runs.back(), seed == 3 ? "sweep" : "run"));
    }
    {
        Writer writer(file.path);
        RunResult extra = random_run(small_shape(), 99);
        const int64_t id = writer.begin_run(extra, "bench");
        writer.write_sweep_rows(id, nlohmann::json::array({{{"context", 4096}, {"dense_ms", 1.5}, {"note", "a,b"}},
                                                           {{"context", 65536}, {"sparse_ms", nullptr}}}));
        ids.push_back(id);  // left incomplete on purpose
    }
    Reader reader(file.path);
    const auto list = reader.runs();
    ASSERT_EQ(list.size(), 4u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(list[i].id, ids[i]);
        EXPECT_EQ(list[i].status, "complete");
        EXPECT_EQ(list[i].config.k, int(i) + 3);
        const RunResult back = reader.load_run(ids[i], true);
        expect_same_run(runs[i], back);
        for (size_t c = 0; c < runs[i].captures.size(); ++c) expect_same_capture(runs[i].captures[c], back.captures[c]);
    }
    EXPECT_LT(ids[0], ids[1]);
    EXPECT_EQ(list[2].kind, "sweep");
    EXPECT_EQ(list[3].kind, "bench");
    EXPECT_EQ(list[3].status, "incomplete");
    EXPECT_EQ(reader.status(ids[3]), "incomplete");
    EXPECT_EQ(reader.last_run(), ids[3]);
    const auto rows = reader.sweep_rows(ids[3]);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["context"], 4096);
    EXPECT_TRUE(rows[1]["sparse_ms"].is_null());
    EXPECT_TRUE(reader.sweep_rows(ids[0]).empty());
}

TEST(Sessions, RunStaysIncompleteUntilFinishAndIsThenFrozen) {
    TempSession file("status");
    Writer writer(file.path);
    const RunResult run = random_run(small_shape(), 5);
    const int64_t id = writer.begin_run(run);
    writer.write_layers(id, run.layers);
    {
        Reader reader(file.path);
        EXPECT_EQ(reader.status(id), "incomplete");
        EXPECT_EQ(reader.summary(id).n_layers_stored, 4);
        EXPECT_EQ(reader.summary(id).finished_unix_ms, 0);
        const auto stages = reader.stages(id);
        ASSERT_EQ(stages.size(), 2u);
        EXPECT_EQ(stages[0].stage, "begin");
        EXPECT_EQ(stages[1].stage, "layers");
        EXPECT_EQ(stages[1].rows, 4);
    }
    writer.set_label(id, "baseline, k=4");
    writer.finish_run(id);
    Reader reader(file.path);
    EXPECT_EQ(reader.status(id), "complete");
    EXPECT_EQ(reader.summary(id).label, "baseline, k=4");
    EXPECT_GT(reader.summary(id).finished_unix_ms, 0);
    EXPECT_THROW(writer.write_layers(id, run.layers), std::logic_error);
    EXPECT_THROW(writer.write_layers(id + 7, run.layers), InputError);
}

TEST(Sessions, WriterCreatesTheSchemaInAnEmptyFile) {
    TempSession file("empty_file");
    { std::ofstream(file.path).flush(); }  // 0 bytes: what a kill during creation leaves
    expect_input_error([&] { Reader reader(file.path); }, "empty file");
    Writer writer(file.path);
    writer.write_run(random_run(small_shape(), 2));
    EXPECT_EQ(Reader(file.path).runs().size(), 1u);
}

// ---------------------------------------------------------------- bad input

TEST(SessionErrors, NotAnSqliteFile) {
    TempSession file("not_sqlite");
    {
        std::ofstream out(file.path);
        for (int i = 0; i < 20; ++i) out << "this is a plain text file, not a database\n";
    }
    expect_input_error([&] { Reader reader(file.path); }, file.path + ": not an SQLite file");
    expect_input_error([&] { Writer writer(file.path); }, "not an SQLite file");
    {
        std::ofstream out(file.path, std::ios::trunc);
        out << "tiny";
    }
    expect_input_error([&] { Reader reader(file.path); }, "not an SQLite file");
    expect_input_error([&] { Reader reader(file.path + ".missing"); }, "no such file");
    expect_input_error([&] { Reader reader(fs::temp_directory_path().string()); }, "is a directory");
}

TEST(SessionErrors, TruncatedFile) {
    TempSession file("truncated");
    {
        RandomRunShape shape = small_shape();
        shape.n_layers = 8;
        Writer writer(file.path);
        writer.write_run(random_run(shape, 4));
    }  // the last connection closing checkpoints and removes the WAL
    ASSERT_FALSE(fs::exists(file.path + "-wal"));
    const auto size = fs::file_size(file.path);
    ASSERT_GT(size, 20000u);
    fs::resize_file(file.path, size / 2);
    expect_input_error([&] { Reader reader(file.path); }, "truncated");
}

TEST(SessionErrors, NewerSchemaVersion) {
    TempSession file("newer");
    { Writer(file.path).write_run(random_run(small_shape(), 1)); }
    sql(file.path, "UPDATE meta SET value = '" + std::to_string(current_schema_version() + 1) +
                       "' WHERE key = 'schema_version'");
    const std::string expected = file.path + " was written by a newer msascope (schema " +
                                 std::to_string(current_schema_version() + 1) + " > " +
                                 std::to_string(current_schema_version()) + ")";
    expect_input_error([&] { Reader reader(file.path); }, expected);
    expect_input_error([&] { Writer writer(file.path); }, expected);
}

TEST(SessionErrors, MissingTablesAndForeignDatabases) {
    TempSession file("missing");
    { Writer(file.path).write_run(random_run(small_shape(), 1)); }
    sql(file.path, "DROP TABLE kernels");
    expect_input_error([&] { Reader reader(file.path); }, "missing table 'kernels'");
    expect_input_error([&] { Writer writer(file.path); }, "missing table 'kernels'");

    TempSession other("foreign");
    sql(other.path, "CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT)");
    expect_input_error([&] { Reader reader(other.path); }, "not an msascope session");
    expect_input_error([&] { Writer writer(other.path); }, "not an msascope session");
    sql(other.path, "CREATE TABLE meta(key TEXT, value TEXT)");
    expect_input_error([&] { Reader reader(other.path); }, "no schema_version");
}

TEST(SessionErrors, CorruptedBlobHeaders) {
    TempSession file("corrupt_blob");
    int64_t id = 0, bad_ids = 0;
    {
        Writer writer(file.path);
        id = writer.write_run(random_run(small_shape(), 8));
        // Well-formed rows whose block ids lie beyond the 10 blocks of 600 tokens.
        RunResult run = random_run(small_shape(), 9);
        run.captures.resize(1);
        for (int32_t& b : run.captures[0].selection.blocks)
            if (b >= 0) b += 40;
        bad_ids = writer.write_run(run);
    }
    // Damage the magic of layer 1's scores, shorten layer 3's mass, and give
    // layer 2 a valid selection BLOB of the wrong shape (2x3 int16).
    patch_capture_blob(file.path, "scores", 1, [](std::vector<uint8_t>& b) { std::memcpy(b.data(), "XXXX", 4); });
    patch_capture_blob(file.path, "mass", 3, [](std::vector<uint8_t>& b) { b.resize(b.size() - 6); });
    patch_capture_blob(file.path, "selection", 2, [](std::vector<uint8_t>& b) {
        const std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5};
        b = encode_ids(ids, {2, 3});
    });
    Reader reader(file.path);
    expect_input_error([&] { reader.load_capture(id, 1); }, "run " + std::to_string(id) + " layer 1 scores BLOB: ");
    expect_input_error([&] { reader.load_capture(id, 1); }, "bad magic");
    expect_input_error([&] { reader.load_capture(id, 3); }, "size mismatch");
    expect_input_error([&] { reader.load_capture(id, 2); }, "selection BLOB: shape 2x3 does not match the expected 600x3x4");
    expect_input_error([&] { reader.load_run(id, true); }, file.path);
    expect_input_error([&] { reader.load_selection(bad_ids, 0); }, "out of range");
    // The parts that are intact still load.
    EXPECT_EQ(reader.load_capture(id, 0).selection.n_tokens, 600);
    EXPECT_EQ(reader.load_run(id, false).layers.size(), 4u);
}

TEST(SessionErrors, UnknownRunId) {
    TempSession file("unknown_run");
    { Writer(file.path).write_run(random_run(small_shape(), 1)); }
    Reader reader(file.path);
    expect_input_error([&] { reader.load_run(42); }, "no run 42 (it holds runs 1..1)");
    expect_input_error([&] { resolve_run(reader, {file.path, 42}); }, "no run 42");
    EXPECT_EQ(resolve_run(reader, {file.path, -1}), 1);
    EXPECT_EQ(resolve_run(reader, {file.path, 1}), 1);
}

// ---------------------------------------------------------------- FILE:RUN

TEST(SessionRunRef, ParsesFileAndRun) {
    TempSession file("ref");
    { Writer(file.path).write_run(random_run(small_shape(), 1)); }
    EXPECT_EQ(parse_run_ref("a.db").path, "a.db");
    EXPECT_EQ(parse_run_ref("a.db").run, -1);
    EXPECT_EQ(parse_run_ref("a.db:3").path, "a.db");
    EXPECT_EQ(parse_run_ref("a.db:3").run, 3);
    EXPECT_EQ(parse_run_ref("/tmp/x:y/s.db:12").path, "/tmp/x:y/s.db");
    EXPECT_EQ(parse_run_ref("/tmp/x:y/s.db:12").run, 12);
    EXPECT_EQ(parse_run_ref("/tmp/x:y/s.db").path, "/tmp/x:y/s.db");  // the tail is not a number
    EXPECT_EQ(parse_run_ref("/tmp/x:y/s.db").run, -1);
    EXPECT_EQ(parse_run_ref(file.path + ":1").path, file.path);
    expect_input_error([] { parse_run_ref(""); }, "empty session path");
    expect_input_error([] { parse_run_ref("a.db:"); }, "nothing after the ':'");
    expect_input_error([] { parse_run_ref(":5"); }, "needs a file");
    expect_input_error([] { parse_run_ref("a.db:123456789012345678901"); }, "too large");
    expect_input_error([&] { parse_run_ref(file.path + ":last"); }, "'last' is not a number");
    // A file whose own name ends in ":7" is a path, not run 7 of a missing file.
    TempSession odd("odd:7");
    { Writer(odd.path).write_run(random_run(small_shape(), 1)); }
    EXPECT_EQ(parse_run_ref(odd.path).path, odd.path);
    EXPECT_EQ(parse_run_ref(odd.path).run, -1);
}

// ---------------------------------------------------------------- compare

TEST(SessionCompare, JsonHasTheCliKeysAndCorrectNumbers) {
    const RunResult a = random_run(small_shape(), 1);
    RunResult b = a;
    b.config.k = 8;
    b.perplexity_msa = a.perplexity_msa * 1.1;
    for (size_t i = 0; i < b.kernels.size(); ++i) b.kernels[i].end_ns += 1000000 * (i % 3);  // +0/1/2 ms
    b.kernels.push_back(b.kernels.front());  // one extra launch of the first name
    const auto j = compare_runs(a, b);
    for (const char* key : {"a", "b", "config_diff", "metrics", "kernels", "selection_jaccard"}) EXPECT_TRUE(j.contains(key)) << key;
    ASSERT_EQ(j["config_diff"].size(), 1u);
    EXPECT_EQ(j["config_diff"][0]["field"], "k");
    EXPECT_EQ(j["config_diff"][0]["a"], 4);
    EXPECT_EQ(j["config_diff"][0]["b"], 8);
    bool found = false;
    for (const auto& m : j["metrics"]) {
        for (const char* key : {"name", "a", "b", "delta", "rel"}) ASSERT_TRUE(m.contains(key)) << key;
        if (m["name"] == "perplexity_msa") {
            found = true;
            EXPECT_NEAR(m["delta"].get<double>(), a.perplexity_msa * 0.1, 1e-9);
            EXPECT_NEAR(m["rel"].get<double>(), 0.1, 1e-9);
        }
        if (m["name"] == "perplexity_random") ADD_FAILURE() << "a metric missing on both sides is left out";
    }
    EXPECT_TRUE(found);
    ASSERT_EQ(j["kernels"].size(), a.kernels.size() + 1);
    for (size_t i = 0; i < a.kernels.size(); ++i) {
        const auto& k = j["kernels"][i];
        for (const char* key : {"name", "a_ms", "b_ms", "delta_ms", "rel"}) ASSERT_TRUE(k.contains(key)) << key;
        EXPECT_EQ(k["name"], a.kernels[i].name);
        EXPECT_NEAR(k["delta_ms"].get<double>(), double(i % 3), 1e-9);
    }
    // The extra launch in b pairs with nothing in a.
    const auto& extra = j["kernels"].back();
    EXPECT_TRUE(extra["a_ms"].is_null());
    EXPECT_EQ(extra["name"], a.kernels.front().name);
    int count_first = 0;
    for (const auto& k : a.kernels) count_first += k.name == a.kernels.front().name;
    EXPECT_EQ(extra["launch"], count_first);
    bool total_found = false;
    for (const auto& t : j["kernel_totals"])
        if (t["name"] == a.kernels.front().name) {
            total_found = true;
            EXPECT_EQ(t["a_count"], count_first);
            EXPECT_EQ(t["b_count"], count_first + 1);
        }
    EXPECT_TRUE(total_found);
    // Identical selections: Jaccard 1 for every captured layer and group.
    ASSERT_EQ(j["selection_jaccard"]["rows"].size(), a.captures.size() * 3);
    EXPECT_DOUBLE_EQ(j["selection_jaccard"]["mean"].get<double>(), 1.0);
    EXPECT_EQ(j["selection_jaccard"]["unit"], "blocks");
}

TEST(SessionCompare, JaccardOfKnownSelections) {
    Selection a, b;
    a.n_tokens = b.n_tokens = 2;
    a.n_groups = b.n_groups = 1;
    a.slots = b.slots = 3;
    a.blocks = {0, 1, 2, /**/ 0, -1, -1};
    b.blocks = {1, 2, 3, /**/ 0, -1, -1};
    // Query 0: {0,1,2} vs {1,2,3} = 2/4; query 1: identical = 1.
    EXPECT_DOUBLE_EQ(selection_jaccard(a, 4, b, 4, 0), (0.5 + 1.0) / 2);
    // Different block sizes compare the covered keys, clipped to t + 1.
    Selection c, d;
    c.n_tokens = d.n_tokens = 1;
    c.n_groups = d.n_groups = 1;
    c.slots = 1;
    d.slots = 2;
    c.blocks = {0};      // block 8: keys [0, 8) clipped to [0, 1)
    d.blocks = {0, -1};  // block 4: keys [0, 4) clipped to [0, 1)
    EXPECT_DOUBLE_EQ(selection_jaccard(c, 8, d, 4, 0), 1.0);
    RunResult ra, rb;
    ra.config.block = 8;
    rb.config.block = 4;
    ra.captures.push_back(LayerCapture{});
    ra.captures[0].selection = c;
    rb.captures.push_back(LayerCapture{});
    rb.captures[0].selection = d;
    EXPECT_EQ(compare_runs(ra, rb)["selection_jaccard"]["unit"], "tokens");
    EXPECT_TRUE(compare_runs(ra, RunResult{})["selection_jaccard"]["mean"].is_null());
}

// ---------------------------------------------------------------- export

TEST(SessionExport, PerfettoTraceStructure) {
    RunResult run = random_run(small_shape(), 3);
    run.kernels.push_back(KernelRecord{});  // untimed: left out
    run.kernels.back().name = "untimed";
    const auto trace = perfetto_trace(run, "msascope run 1");
    ASSERT_TRUE(trace["traceEvents"].is_array());
    std::set<uint32_t> streams;
    for (const auto& k : run.kernels)
        if (k.end_ns) streams.insert(k.stream);
    ASSERT_EQ(streams.size(), 2u);
    size_t x_events = 0;
    std::set<int64_t> named_threads;
    bool process_named = false;
    for (const auto& e : trace["traceEvents"]) {
        ASSERT_TRUE(e.contains("name") && e.contains("ph") && e.contains("pid") && e.contains("tid")) << e.dump();
        if (e["ph"] == "X") {
            ++x_events;
            ASSERT_TRUE(e.contains("ts") && e.contains("dur")) << e.dump();
            EXPECT_GE(e["ts"].get<double>(), 0.0);
            EXPECT_GT(e["dur"].get<double>(), 0.0);
            EXPECT_EQ(streams.count(e["tid"].get<uint32_t>()), 1u);
            EXPECT_NE(e["name"], "untimed");
        } else {
            ASSERT_EQ(e["ph"], "M");
            ASSERT_TRUE(e.contains("args")) << e.dump();
            if (e["name"] == "process_name") process_named = e["args"]["name"] == "msascope run 1";
            if (e["name"] == "thread_name") named_threads.insert(e["tid"].get<int64_t>());
        }
    }
    EXPECT_EQ(x_events, run.kernels.size() - 1);
    EXPECT_TRUE(process_named);
    EXPECT_EQ(named_threads.size(), streams.size());
    EXPECT_EQ(trace["otherData"]["untimed_kernels"], 1);
    // The first launch starts at 0 µs and durations are in µs.
    const KernelRecord& first = run.kernels.front();
    for (const auto& e : trace["traceEvents"])
        if (e["ph"] == "X" && e["args"]["correlation_id"] == first.correlation_id) {
            EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 0.0);
            EXPECT_DOUBLE_EQ(e["dur"].get<double>(), (first.end_ns - first.start_ns) / 1000.0);
        }
}

TEST(SessionExport, CsvTables) {
    TempSession file("csv");
    const RunResult run = random_run(small_shape(), 6);
    int64_t id = 0;
    {
        Writer writer(file.path);
        id = writer.write_run(run);
        writer.write_run(random_run(small_shape(), 7));
    }
    Reader reader(file.path);
    auto csv = [&](const std::string& table, int layer = -1) {
        std::ostringstream out;
        write_csv(reader, id, table, out, layer);
        std::vector<std::string> lines;
        std::istringstream in(out.str());
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return lines;
    };
    auto layers = csv("layers");
    ASSERT_EQ(layers.size(), 5u);
    EXPECT_EQ(layers[0], "layer,recall_mean,recall_p5,recall_p50,output_rel_error");
    EXPECT_EQ(layers[1].substr(0, 2), "0,");
    EXPECT_EQ(csv("runs").size(), 3u);
    EXPECT_EQ(csv("kernels").size(), run.kernels.size() + 1);
    EXPECT_EQ(csv("heads").size(), 4u * 9 + 1);
    EXPECT_EQ(csv("groups").size(), 4u * 3 + 1);
    EXPECT_EQ(csv("timings").size(), run.timings.size() + 1);
    const auto needles = csv("needles");
    ASSERT_EQ(needles.size(), 3u);
    EXPECT_EQ(needles[2].rfind("\"beta, \"\"b\"\"\",42,", 0), 0u) << needles[2];  // quoted per RFC 4180
    const auto selections = csv("selections", 2);
    ASSERT_EQ(selections.size(), 600u * 3 + 1);
    EXPECT_EQ(selections[0], "layer,query,group,slot_0,slot_1,slot_2,slot_3");
    EXPECT_EQ(selections[1], "2,0,0,0,,,");  // query 0 sees only block 0
    EXPECT_EQ(csv("selections").size(), 4u * 600 * 3 + 1);
    const auto scores = csv("scores", 1);
    ASSERT_EQ(scores.size(), 600u * 3 + 1);
    EXPECT_NE(scores[1].find("-inf"), std::string::npos);
    EXPECT_EQ(csv("mass", 3).size(), 600u * 9 + 1);
    EXPECT_EQ(csv("recall", 1).size(), 600u + 1);
    EXPECT_GE(csv("stages").size(), 8u);
    expect_input_error([&] { csv("scores", 0); }, "no scores");
    expect_input_error([&] { csv("selections", 9); }, "did not capture layer 9");
    expect_input_error([&] { csv("nonsense"); }, "unknown table 'nonsense'");
}
