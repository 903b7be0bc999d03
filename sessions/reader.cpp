#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.h"
#include "sessions/blob.h"
#include "sessions/schema.h"
#include "sessions/session.h"
#include "sessions/sqlite_db.h"

namespace msa::sessions {

using detail::Database;
using detail::Statement;
using detail::Transaction;

namespace {

[[noreturn]] void damaged(const Database& db, const std::string& what) {
    throw InputError(db.path() + ": damaged session file (" + what + ")");
}

MsaConfig config_from(const Database& db, const Statement& s, int k_col) {
    MsaConfig c;
    c.k = s.integer(k_col);
    c.block = s.integer(k_col + 1);
    const std::string scorer = s.text(k_col + 2);
    c.sink = s.integer(k_col + 3);
    const std::string index = s.text(k_col + 4);
    const int64_t seed = s.int64(k_col + 5);
    std::memcpy(&c.seed, &seed, sizeof seed);
    try {
        c.scorer = parse_scorer(scorer);
        c.index = parse_index_kind(index);
    } catch (const InputError&) {
        damaged(db, "unknown scorer '" + scorer + "' or index kind '" + index + "'");
    }
    return c;
}

std::string run_context(int64_t run, int layer, const char* part) {
    return "run " + std::to_string(run) + " layer " + std::to_string(layer) + " " + part + " BLOB: ";
}

// Decodes a capture BLOB and checks its shape against the row's columns, so a
// consumer indexing by [t, g, b] can never step outside the array.
template <typename Decode>
auto decode_checked(const Database& db, const Statement& s, int col, const std::vector<uint32_t>& expected,
                    int64_t run, int layer, const char* part, Decode decode) {
    size_t size = 0;
    const uint8_t* data = s.blob(col, size);
    try {
        return decode(data, size, nullptr, &expected);
    } catch (const BlobError& e) {
        throw InputError(db.path() + ": " + run_context(run, layer, part) + e.what());
    }
}

Selection read_selection(Database& db, const Statement& s, int first_col, int blob_col, int64_t run, int layer,
                         int block) {
    Selection sel;
    if (s.is_null(blob_col)) return sel;
    const int n_tokens = s.integer(first_col), n_groups = s.integer(first_col + 1), slots = s.integer(first_col + 4);
    if (n_tokens < 0 || n_groups < 0 || slots < 0) damaged(db, run_context(run, layer, "selection") + "negative shape");
    sel.blocks = decode_checked(db, s, blob_col, {uint32_t(n_tokens), uint32_t(n_groups), uint32_t(slots)}, run, layer,
                                "selection", decode_ints);
    sel.n_tokens = n_tokens;
    sel.n_groups = n_groups;
    sel.slots = slots;
    const int64_t n_blocks = block > 0 ? (int64_t(n_tokens) + block - 1) / block : INT32_MAX;
    for (int32_t id : sel.blocks)
        if (id < -1 || id >= n_blocks)
            damaged(db, run_context(run, layer, "selection") + "block id " + std::to_string(id) + " out of range");
    return sel;
}

int run_block_size(Database& db, int64_t run) {
    Statement s(db, "SELECT block FROM runs WHERE id = ?");
    s.bind(1, run);
    return s.step() ? s.integer(0) : 0;
}

LayerCapture read_capture(Database& db, int64_t run, int layer, bool selection_only) {
    Statement s(db, selection_only
                        ? "SELECT n_tokens, n_groups, n_heads, n_blocks, slots, selection FROM captures "
                          "WHERE run_id = ? AND layer = ?"
                        : "SELECT n_tokens, n_groups, n_heads, n_blocks, slots, selection, recall, scores, mass, "
                          "q, k, v FROM captures WHERE run_id = ? AND layer = ?");
    s.bind(1, run).bind(2, layer);
    if (!s.step())
        throw InputError(db.path() + ": run " + std::to_string(run) + " has no capture of layer " + std::to_string(layer));
    LayerCapture c;
    c.layer = layer;
    c.selection = read_selection(db, s, 0, 5, run, layer, run_block_size(db, run));
    if (selection_only) return c;
    const int n_tokens = s.integer(0), n_groups = s.integer(1), n_heads = s.integer(2), n_blocks = s.integer(3);
    if (n_tokens < 0 || n_groups < 0 || n_heads < 0 || n_blocks < 0) damaged(db, "capture with a negative shape");
    const uint32_t N = n_tokens, G = n_groups, H = n_heads, NB = n_blocks;
    if (!s.is_null(6)) c.recall = decode_checked(db, s, 6, {N, H}, run, layer, "recall", decode_floats);
    if (!s.is_null(7)) {
        c.scores.values = decode_checked(db, s, 7, {N, G, NB}, run, layer, "scores", decode_floats);
        c.scores.n_tokens = n_tokens;
        c.scores.n_groups = n_groups;
        c.scores.n_blocks = n_blocks;
    }
    if (!s.is_null(8)) {
        c.mass.values = decode_checked(db, s, 8, {N, H, NB}, run, layer, "mass", decode_floats);
        c.mass.n_tokens = n_tokens;
        c.mass.n_heads = n_heads;
        c.mass.n_blocks = n_blocks;
    }
    if (!s.is_null(9) || !s.is_null(10) || !s.is_null(11)) {
        if (s.is_null(9) || s.is_null(10) || s.is_null(11)) damaged(db, run_context(run, layer, "q/k/v") + "incomplete");
        std::vector<uint32_t> q_dims;
        size_t size = 0;
        const uint8_t* data = s.blob(9, size);
        try {
            q_dims = read_blob_info(data, size).dims;
        } catch (const BlobError& e) {
            throw InputError(db.path() + ": " + run_context(run, layer, "q") + e.what());
        }
        if (q_dims.size() != 3) damaged(db, run_context(run, layer, "q") + "not [N, Hq, d]");
        // K and V share Q's token count and head dim; their head count comes from K's own header.
        std::vector<uint32_t> k_dims;
        data = s.blob(10, size);
        try {
            k_dims = read_blob_info(data, size).dims;
        } catch (const BlobError& e) {
            throw InputError(db.path() + ": " + run_context(run, layer, "k") + e.what());
        }
        const std::vector<uint32_t> kv_dims = {q_dims[0], k_dims.size() == 3 ? k_dims[1] : 0u, q_dims[2]};
        c.q = decode_checked(db, s, 9, q_dims, run, layer, "q", decode_floats);
        c.k = decode_checked(db, s, 10, kv_dims, run, layer, "k", decode_floats);
        c.v = decode_checked(db, s, 11, kv_dims, run, layer, "v", decode_floats);
        c.qkv_shape.n_tokens = static_cast<int>(q_dims[0]);
        c.qkv_shape.n_heads = static_cast<int>(q_dims[1]);
        c.qkv_shape.n_kv_heads = static_cast<int>(kv_dims[1]);
        c.qkv_shape.head_dim = static_cast<int>(q_dims[2]);
    }
    return c;
}

std::vector<int> read_captured_layers(Database& db, int64_t run) {
    Statement s(db, "SELECT layer FROM captures WHERE run_id = ? ORDER BY layer");
    s.bind(1, run);
    std::vector<int> layers;
    while (s.step()) layers.push_back(s.integer(0));
    return layers;
}

constexpr const char* kSummaryColumns =
    "SELECT r.id, r.kind, r.status, r.model_path, r.backend, r.device, "
    "r.k, r.block, r.scorer, r.sink, r.index_kind, r.seed, "
    "r.n_tokens, r.started_unix_ms, r.perplexity_dense, r.perplexity_msa, r.label, r.finished_unix_ms, "
    "(SELECT AVG(recall_mean) FROM layer_metrics WHERE run_id = r.id), "
    "(SELECT COUNT(*) FROM layer_metrics WHERE run_id = r.id), "
    "(SELECT COUNT(*) FROM captures WHERE run_id = r.id), "
    "(SELECT COUNT(*) FROM kernels WHERE run_id = r.id) "
    "FROM runs r ";

RunSummary summary_from(const Database& db, const Statement& s) {
    RunSummary r;
    r.id = s.int64(0);
    r.kind = s.text(1);
    r.status = s.text(2);
    r.model_path = s.text(3);
    r.backend = s.text(4);
    r.device = s.text(5);
    r.config = config_from(db, s, 6);
    r.n_tokens = s.integer(12);
    r.started_unix_ms = s.int64(13);
    r.perplexity_dense = s.real(14);
    r.perplexity_msa = s.real(15);
    r.label = s.text(16);
    r.finished_unix_ms = s.is_null(17) ? 0 : s.int64(17);
    r.recall_mean = s.real(18);
    r.n_layers_stored = s.integer(19);
    r.n_captures = s.integer(20);
    r.n_kernels = s.int64(21);
    return r;
}

}  // namespace

int current_schema_version() { return detail::kSchemaVersion; }

Reader::Reader(const std::string& path) {
    if (!detail::check_sqlite_header(path)) throw InputError(path + ": empty file, not an msascope session");
    db_ = std::make_unique<Database>(path, Database::Mode::read);
    {
        Transaction txn(*db_, Transaction::Kind::read);
        schema_version_ = detail::read_schema_version(*db_);
        if (schema_version_ == 0) throw InputError(path + ": not an msascope session (the SQLite file has no tables)");
        if (schema_version_ == detail::kSchemaVersion) detail::check_tables(*db_);
        txn.commit();
    }
    if (schema_version_ < detail::kSchemaVersion) {
        // Older files are brought forward in place (the same steps a Writer
        // runs), so every query below can assume the current schema.
        Transaction txn(*db_, Transaction::Kind::write);
        const int version = detail::read_schema_version(*db_);
        if (version < detail::kSchemaVersion) detail::migrate(*db_, version);
        detail::check_tables(*db_);
        txn.commit();
        schema_version_ = detail::kSchemaVersion;
    }
    db_->exec("PRAGMA query_only=1");
}

Reader::~Reader() = default;

const std::string& Reader::path() const { return db_->path(); }
int Reader::schema_version() const { return schema_version_; }

std::string Reader::writer_version() const {
    Statement s(*db_, "SELECT value FROM meta WHERE key = 'created_by'");
    return s.step() ? s.text(0) : std::string();
}

void Reader::require_run(int64_t id) const {
    Statement s(*db_, "SELECT 1 FROM runs WHERE id = ?");
    s.bind(1, id);
    if (s.step()) return;
    Statement range(*db_, "SELECT MIN(id), MAX(id), COUNT(*) FROM runs");
    range.step();
    const std::string held = range.int64(2) == 0 ? "it holds no runs"
                                                  : "it holds runs " + std::to_string(range.int64(0)) + ".." +
                                                        std::to_string(range.int64(1));
    throw InputError(path() + ": no run " + std::to_string(id) + " (" + held + ")");
}

std::vector<RunSummary> Reader::runs() const {
    Transaction txn(*db_, Transaction::Kind::read);
    Statement s(*db_, (std::string(kSummaryColumns) + "ORDER BY r.id").c_str());
    std::vector<RunSummary> out;
    while (s.step()) out.push_back(summary_from(*db_, s));
    return out;
}

RunSummary Reader::summary(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    Statement s(*db_, (std::string(kSummaryColumns) + "WHERE r.id = ?").c_str());
    s.bind(1, id);
    s.step();
    return summary_from(*db_, s);
}

int64_t Reader::last_run() const {
    Statement s(*db_, "SELECT MAX(id) FROM runs");
    if (!s.step() || s.is_null(0)) throw InputError(path() + ": holds no runs");
    return s.int64(0);
}

std::string Reader::status(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    Statement s(*db_, "SELECT status FROM runs WHERE id = ?");
    s.bind(1, id).step();
    return s.text(0);
}

RunResult Reader::load_run(int64_t id, bool with_captures) const {
    Database& db = *db_;
    Transaction txn(db, Transaction::Kind::read);  // one snapshot for every table below
    require_run(id);
    RunResult r;
    {
        Statement s(db,
                    "SELECT model_path, model_hash, model_format, quantization, model_config, text, tokens, "
                    "k, block, scorer, sink, index_kind, seed, backend, device, threads, started_unix_ms, "
                    "finished_unix_ms, perplexity_dense, perplexity_msa, perplexity_random, needle_hit_rate, "
                    "dense_attention_flops, msa_attention_flops FROM runs WHERE id = ?");
        s.bind(1, id).step();
        r.model_path = s.text(0);
        r.model_hash = s.text(1);
        r.model_format = s.text(2);
        r.quantization = s.text(3);
        try {
            r.model_config = detail::model_config_from_json(nlohmann::json::parse(s.text(4)));
        } catch (const nlohmann::json::exception& e) {
            damaged(db, "run " + std::to_string(id) + " model_config: " + e.what());
        }
        r.text = s.text(5);
        if (!s.is_null(6)) {
            size_t size = 0;
            const uint8_t* data = s.blob(6, size);
            std::vector<uint32_t> dims;
            try {
                r.tokens = decode_ints(data, size, &dims);
            } catch (const BlobError& e) {
                damaged(db, "run " + std::to_string(id) + " tokens BLOB: " + e.what());
            }
        }
        r.config = config_from(db, s, 7);
        r.backend = s.text(13);
        r.device = s.text(14);
        r.threads = s.integer(15);
        r.started_unix_ms = s.int64(16);
        r.finished_unix_ms = s.is_null(17) ? 0 : s.int64(17);
        r.perplexity_dense = s.real(18);
        r.perplexity_msa = s.real(19);
        r.perplexity_random = s.real(20);
        r.needle_hit_rate = s.real(21);
        r.dense_attention_flops = s.is_null(22) ? 0 : s.real(22);
        r.msa_attention_flops = s.is_null(23) ? 0 : s.real(23);
    }
    {
        Statement s(db,
                    "SELECT layer, recall_mean, recall_p5, recall_p50, output_rel_error FROM layer_metrics "
                    "WHERE run_id = ? ORDER BY layer");
        s.bind(1, id);
        while (s.step()) {
            LayerResult l;
            l.layer = s.integer(0);
            l.recall_mean = s.real(1);
            l.recall_p5 = s.real(2);
            l.recall_p50 = s.real(3);
            l.output_rel_error = s.real(4);
            r.layers.push_back(std::move(l));
        }
    }
    auto layer_index = [&](int layer) -> LayerResult* {
        auto it = std::lower_bound(r.layers.begin(), r.layers.end(), layer,
                                   [](const LayerResult& l, int v) { return l.layer < v; });
        return it != r.layers.end() && it->layer == layer ? &*it : nullptr;
    };
    // Per-group/head rows index small vectors: bound the index so a damaged
    // row cannot make us allocate without limit.
    constexpr int64_t kMaxHeads = 1 << 16;
    {
        Statement s(db, "SELECT layer, grp, recall_mean FROM group_metrics WHERE run_id = ? ORDER BY layer, grp");
        s.bind(1, id);
        while (s.step()) {
            LayerResult* l = layer_index(s.integer(0));
            const int64_t g = s.int64(1);
            if (!l) continue;
            if (g < 0 || g >= kMaxHeads) damaged(db, "group index " + std::to_string(g));
            if (l->group_recall_mean.size() <= size_t(g)) l->group_recall_mean.resize(g + 1, NAN);
            l->group_recall_mean[g] = s.real(2);
        }
    }
    {
        Statement s(db,
                    "SELECT layer, head, recall_mean, rel_error FROM head_metrics WHERE run_id = ? ORDER BY layer, head");
        s.bind(1, id);
        while (s.step()) {
            LayerResult* l = layer_index(s.integer(0));
            const int64_t h = s.int64(1);
            if (!l) continue;
            if (h < 0 || h >= kMaxHeads) damaged(db, "head index " + std::to_string(h));
            if (l->head_recall_mean.size() <= size_t(h)) l->head_recall_mean.resize(h + 1, NAN);
            if (l->head_rel_error.size() <= size_t(h)) l->head_rel_error.resize(h + 1, NAN);
            l->head_recall_mean[h] = s.real(2);
            l->head_rel_error[h] = s.real(3);
        }
    }
    {
        Statement s(db,
                    "SELECT n.value, p.value, k.layer, k.stream, k.correlation_id, k.grid_x, k.grid_y, k.grid_z, "
                    "k.block_x, k.block_y, k.block_z, k.registers, k.shared_bytes, k.start_ns, k.end_ns, k.flops, "
                    "k.bytes, k.context FROM kernels k JOIN strings n ON n.id = k.name_id JOIN strings p ON p.id = k.phase_id "
                    "WHERE k.run_id = ? ORDER BY k.seq");
        s.bind(1, id);
        while (s.step()) {
            KernelRecord k;
            k.name = s.text(0);
            k.phase = s.text(1);
            k.layer = s.integer(2);
            k.stream = static_cast<uint32_t>(s.int64(3));
            k.correlation_id = static_cast<uint32_t>(s.int64(4));
            for (int d = 0; d < 3; ++d) k.grid[d] = s.integer(5 + d);
            for (int d = 0; d < 3; ++d) k.block[d] = s.integer(8 + d);
            k.registers = s.integer(11);
            k.shared_bytes = s.integer(12);
            k.start_ns = static_cast<uint64_t>(s.int64(13));
            k.end_ns = static_cast<uint64_t>(s.int64(14));
            k.flops = s.is_null(15) ? 0 : s.real(15);
            k.bytes = s.is_null(16) ? 0 : s.real(16);
            k.context = s.int64(17);
            r.kernels.push_back(std::move(k));
        }
    }
    {
        Statement s(db, "SELECT name, ms FROM timings WHERE run_id = ? ORDER BY seq");
        s.bind(1, id);
        while (s.step()) r.timings.push_back({s.text(0), s.real(1)});
    }
    {
        Statement s(db,
                    "SELECT key, value, token_begin, token_end, question_token FROM needles WHERE run_id = ? ORDER BY seq");
        s.bind(1, id);
        while (s.step()) {
            Needle n;
            n.key = s.text(0);
            n.value = s.text(1);
            n.token_begin = s.integer(2);
            n.token_end = s.integer(3);
            n.question_token = s.integer(4);
            r.needles.push_back(std::move(n));
        }
    }
    {
        Statement s(db, "SELECT message FROM warnings WHERE run_id = ? ORDER BY seq");
        s.bind(1, id);
        while (s.step()) r.warnings.push_back(s.text(0));
    }
    if (with_captures)
        for (int layer : read_captured_layers(db, id)) r.captures.push_back(read_capture(db, id, layer, false));
    txn.commit();
    return r;
}

std::vector<int> Reader::captured_layers(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    return read_captured_layers(*db_, id);
}

LayerCapture Reader::load_capture(int64_t id, int layer) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    return read_capture(*db_, id, layer, false);
}

Selection Reader::load_selection(int64_t id, int layer) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    return read_capture(*db_, id, layer, true).selection;
}

nlohmann::json Reader::sweep_rows(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    Statement s(*db_, "SELECT seq, row FROM sweep_rows WHERE run_id = ? ORDER BY seq");
    s.bind(1, id);
    nlohmann::json rows = nlohmann::json::array();
    while (s.step()) {
        try {
            rows.push_back(nlohmann::json::parse(s.text(1)));
        } catch (const nlohmann::json::exception&) {
            damaged(*db_, "run " + std::to_string(id) + " sweep row " + std::to_string(s.int64(0)) + " is not JSON");
        }
    }
    return rows;
}

nlohmann::json Reader::run_config(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    Statement s(*db_, "SELECT config FROM run_configs WHERE run_id = ?");
    s.bind(1, id);
    if (!s.step()) return nlohmann::json::object();
    try {
        nlohmann::json config = nlohmann::json::parse(s.text(0));
        if (config.is_object()) return config;
    } catch (const nlohmann::json::exception&) {
    }
    damaged(*db_, "run " + std::to_string(id) + " config is not a JSON object");
}

std::vector<StageRecord> Reader::stages(int64_t id) const {
    Transaction txn(*db_, Transaction::Kind::read);
    require_run(id);
    Statement s(*db_, "SELECT stage, rows, layer FROM stages WHERE run_id = ? ORDER BY seq");
    s.bind(1, id);
    std::vector<StageRecord> out;
    while (s.step()) out.push_back({s.text(0), s.int64(1), s.is_null(2) ? -1 : s.integer(2)});
    return out;
}

std::string Reader::integrity_check() const {
    Statement s(*db_, "PRAGMA integrity_check(8)");
    std::string report;
    while (s.step()) report += (report.empty() ? "" : "; ") + s.text(0);
    return report;
}

// ---------------------------------------------------------------- FILE[:RUN]

RunRef parse_run_ref(const std::string& text) {
    if (text.empty()) throw InputError("empty session path (expected FILE or FILE:RUN)");
    auto exists = [](const std::string& p) {
        struct stat info {};
        return ::stat(p.c_str(), &info) == 0;
    };
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return {text, -1};
    const std::string head = text.substr(0, colon), tail = text.substr(colon + 1);
    const bool digits = !tail.empty() && std::all_of(tail.begin(), tail.end(), [](char c) { return c >= '0' && c <= '9'; });
    // A file literally named "x:12" wins over run 12 of "x" only when "x" itself does not exist.
    if (exists(text) && !(digits && exists(head))) return {text, -1};
    if (digits) {
        if (head.empty()) throw InputError("'" + text + "': FILE:RUN needs a file before the ':'");
        if (tail.size() > 15) throw InputError("'" + text + "': run id " + tail + " is too large");
        return {head, std::stoll(tail)};
    }
    if (tail.empty()) throw InputError("'" + text + "': FILE:RUN has nothing after the ':' (expected a run id)");
    if (!head.empty() && exists(head))
        throw InputError("'" + text + "': run id '" + tail + "' is not a number (expected FILE:RUN, e.g. " + head + ":1)");
    return {text, -1};
}

int64_t resolve_run(const Reader& reader, const RunRef& ref) {
    if (ref.run < 0) return reader.last_run();
    reader.summary(ref.run);  // throws InputError for an unknown id
    return ref.run;
}

}  // namespace msa::sessions
