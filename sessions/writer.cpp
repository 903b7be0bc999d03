#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

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

std::string default_label(const RunResult& r) {
    std::string label = "k" + std::to_string(r.config.k) + " B" + std::to_string(r.config.block) + " " +
                        to_string(r.config.scorer) + " sink" + std::to_string(r.config.sink);
    if (r.config.index == IndexKind::trained) label += " trained";
    if (!r.backend.empty()) label += " " + r.backend;
    if (!r.tokens.empty()) label += " " + std::to_string(r.tokens.size()) + "tok";
    return label;
}

uint32_t dim(size_t n, const char* what) {
    if (n > 0x7fffffffu) throw std::invalid_argument(std::string(what) + " dimension too large for a session BLOB");
    return static_cast<uint32_t>(n);
}

void check_size(size_t actual, size_t expected, const char* what) {
    if (actual != expected)
        throw std::invalid_argument(std::string("LayerCapture.") + what + " holds " + std::to_string(actual) +
                                    " values, its shape says " + std::to_string(expected));
}

}  // namespace

Writer::Writer(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) detail::check_sqlite_header(path);
    db_ = std::make_unique<Database>(path, Database::Mode::write);
    // WAL: readers keep reading while a run is written, and a killed writer
    // leaves uncommitted frames that recovery simply drops. synchronous=NORMAL
    // in WAL mode syncs at checkpoints only: a power cut may lose the last
    // stages but never corrupts, and a killed process loses nothing committed
    // (the frames are in the OS page cache).
    {
        // Scoped: a PRAGMA statement left un-reset counts as a pending write and makes COMMIT fail.
        Statement mode(*db_, "PRAGMA journal_mode=WAL");
        const std::string journal = mode.step() ? mode.text(0) : std::string();
        if (journal != "wal")
            throw std::runtime_error(path + ": cannot use a write-ahead log here (journal mode '" + journal + "')");
    }
    db_->exec("PRAGMA synchronous=NORMAL");
    db_->exec("PRAGMA foreign_keys=ON");
    Transaction txn(*db_, Transaction::Kind::write);
    const int version = detail::read_schema_version(*db_);
    if (version < detail::kSchemaVersion) detail::migrate(*db_, version);
    detail::check_tables(*db_);
    txn.commit();
}

Writer::~Writer() = default;

const std::string& Writer::path() const { return db_->path(); }

void Writer::require_run(int64_t run) {
    Statement s(*db_, "SELECT status FROM runs WHERE id = ?");
    s.bind(1, run);
    if (!s.step()) throw InputError(path() + ": no run " + std::to_string(run));
    if (s.text(0) == "complete")
        throw std::logic_error(path() + ": run " + std::to_string(run) + " is complete; stored runs are never rewritten");
}

void Writer::record_stage(int64_t run, const std::string& stage, int64_t rows, int layer) {
    Statement s(*db_,
                "INSERT INTO stages(run_id, seq, stage, rows, layer, committed_unix_ms) "
                "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM stages WHERE run_id = ?1), ?2, ?3, ?4, ?5)");
    s.bind(1, run).bind(2, stage).bind(3, rows);
    if (layer >= 0) s.bind(4, layer);
    s.bind(5, detail::now_unix_ms()).run();
}

int64_t Writer::begin_run(const RunResult& r, const std::string& kind) {
    Transaction txn(*db_, Transaction::Kind::write);
    Statement s(*db_,
                "INSERT INTO runs(kind, status, label, writer_version, model_path, model_hash, model_format, "
                "quantization, model_config, text, tokens, n_tokens, k, block, scorer, sink, index_kind, seed, "
                "backend, device, threads, started_unix_ms) "
                "VALUES (?, 'incomplete', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const std::vector<uint8_t> tokens =
        r.tokens.empty() ? std::vector<uint8_t>() : encode_i32(r.tokens, {dim(r.tokens.size(), "tokens")});
    int64_t seed;  // uint64 stored bit for bit in SQLite's int64
    std::memcpy(&seed, &r.config.seed, sizeof seed);
    s.bind(1, kind);
    s.bind(2, default_label(r));
    s.bind(3, std::string(detail::kWriterVersion));
    s.bind(4, r.model_path);
    s.bind(5, r.model_hash);
    s.bind(6, r.model_format);
    s.bind(7, r.quantization);
    s.bind(8, detail::model_config_to_json(r.model_config).dump());
    s.bind(9, r.text);
    s.bind_blob(10, tokens);
    s.bind(11, static_cast<int64_t>(r.tokens.size()));
    s.bind(12, r.config.k);
    s.bind(13, r.config.block);
    s.bind_text(14, to_string(r.config.scorer));
    s.bind(15, r.config.sink);
    s.bind_text(16, to_string(r.config.index));
    s.bind(17, seed);
    s.bind(18, r.backend);
    s.bind(19, r.device);
    s.bind(20, r.threads);
    s.bind(21, r.started_unix_ms ? r.started_unix_ms : detail::now_unix_ms());
    s.run();
    const int64_t run = db_->last_insert_id();
    record_stage(run, "begin", 1);
    txn.commit();
    return run;
}

void Writer::set_label(int64_t run, const std::string& label) {
    Transaction txn(*db_, Transaction::Kind::write);
    Statement s(*db_, "UPDATE runs SET label = ? WHERE id = ?");
    s.bind(1, label).bind(2, run).run();
    if (db_->changes() == 0) throw InputError(path() + ": no run " + std::to_string(run));
    txn.commit();
}

void Writer::write_layers(int64_t run, const std::vector<LayerResult>& layers) {
    if (layers.empty()) return;
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement layer_row(*db_,
                        "INSERT INTO layer_metrics(run_id, layer, recall_mean, recall_p5, recall_p50, output_rel_error) "
                        "VALUES (?, ?, ?, ?, ?, ?)");
    Statement group_row(*db_, "INSERT INTO group_metrics(run_id, layer, grp, recall_mean) VALUES (?, ?, ?, ?)");
    Statement head_row(*db_, "INSERT INTO head_metrics(run_id, layer, head, recall_mean, rel_error) VALUES (?, ?, ?, ?, ?)");
    for (const LayerResult& l : layers) {
        layer_row.bind(1, run).bind(2, l.layer).bind(3, l.recall_mean).bind(4, l.recall_p5).bind(5, l.recall_p50);
        layer_row.bind(6, l.output_rel_error).run();
        layer_row.reset();
        for (size_t g = 0; g < l.group_recall_mean.size(); ++g) {
            group_row.bind(1, run).bind(2, l.layer).bind(3, static_cast<int64_t>(g)).bind(4, l.group_recall_mean[g]).run();
            group_row.reset();
        }
        const size_t heads = std::max(l.head_recall_mean.size(), l.head_rel_error.size());
        for (size_t h = 0; h < heads; ++h) {
            head_row.bind(1, run).bind(2, l.layer).bind(3, static_cast<int64_t>(h));
            head_row.bind(4, h < l.head_recall_mean.size() ? l.head_recall_mean[h] : NAN);
            head_row.bind(5, h < l.head_rel_error.size() ? l.head_rel_error[h] : NAN).run();
            head_row.reset();
        }
    }
    record_stage(run, "layers", static_cast<int64_t>(layers.size()));
    txn.commit();
}

void Writer::write_capture(int64_t run, const LayerCapture& c) {
    const Selection& sel = c.selection;
    const BlockScores& sc = c.scores;
    const BlockMass& mass = c.mass;
    check_size(sel.blocks.size(), size_t(sel.n_tokens) * sel.n_groups * sel.slots, "selection");
    check_size(sc.values.size(), size_t(sc.n_tokens) * sc.n_groups * sc.n_blocks, "scores");
    check_size(mass.values.size(), size_t(mass.n_tokens) * mass.n_heads * mass.n_blocks, "mass");
    int n_tokens = 0, n_groups = 0, n_heads = 0, n_blocks = 0;
    auto agree = [](int& field, int value, const char* what) {
        if (value <= 0) return;
        if (field > 0 && field != value)
            throw std::invalid_argument(std::string("LayerCapture parts disagree on ") + what);
        field = value;
    };
    if (!sel.blocks.empty()) agree(n_tokens, sel.n_tokens, "n_tokens"), agree(n_groups, sel.n_groups, "n_groups");
    if (!sc.values.empty()) {
        agree(n_tokens, sc.n_tokens, "n_tokens"), agree(n_groups, sc.n_groups, "n_groups");
        agree(n_blocks, sc.n_blocks, "n_blocks");
    }
    if (!mass.values.empty()) {
        agree(n_tokens, mass.n_tokens, "n_tokens"), agree(n_heads, mass.n_heads, "n_heads");
        agree(n_blocks, mass.n_blocks, "n_blocks");
    }
    if (!c.recall.empty()) {
        if (n_tokens <= 0)
            throw std::invalid_argument("LayerCapture.recall needs a selection, scores or mass to give it n_tokens");
        if (c.recall.size() % n_tokens != 0) throw std::invalid_argument("LayerCapture.recall is not [n_tokens, n_heads]");
        agree(n_heads, static_cast<int>(c.recall.size() / n_tokens), "n_heads");
    }
    std::vector<uint8_t> q_blob, k_blob, v_blob;
    if (!c.q.empty() || !c.k.empty() || !c.v.empty()) {
        const AttentionShape& shape = c.qkv_shape;
        check_size(c.q.size(), size_t(shape.n_tokens) * shape.n_heads * shape.head_dim, "q");
        check_size(c.k.size(), size_t(shape.n_tokens) * shape.n_kv_heads * shape.head_dim, "k");
        check_size(c.v.size(), size_t(shape.n_tokens) * shape.n_kv_heads * shape.head_dim, "v");
        // float16 where it fits (half the bytes: 16 MB instead of 32 for one
        // SmolLM2 layer at 8K tokens). The app re-pools from these only for a
        // scorer or block size other than the run's; at the run's own config it
        // shows the stored scores, so rounding never contradicts them.
        const std::vector<uint32_t> q_dims = {dim(shape.n_tokens, "n_tokens"), dim(shape.n_heads, "n_heads"),
                                              dim(shape.head_dim, "head_dim")};
        const std::vector<uint32_t> kv_dims = {dim(shape.n_tokens, "n_tokens"), dim(shape.n_kv_heads, "n_kv_heads"),
                                               dim(shape.head_dim, "head_dim")};
        q_blob = encode_f16_or_f32(c.q, q_dims);
        k_blob = encode_f16_or_f32(c.k, kv_dims);
        v_blob = encode_f16_or_f32(c.v, kv_dims);
    }
    std::vector<uint8_t> selection_blob, scores_blob, mass_blob, recall_blob;
    if (!sel.blocks.empty())
        selection_blob = encode_ids(sel.blocks, {dim(sel.n_tokens, "n_tokens"), dim(sel.n_groups, "n_groups"),
                                                 dim(sel.slots, "slots")});
    if (!sc.values.empty())
        scores_blob = encode_f16(sc.values, {dim(sc.n_tokens, "n_tokens"), dim(sc.n_groups, "n_groups"),
                                             dim(sc.n_blocks, "n_blocks")});
    if (!mass.values.empty())
        mass_blob = encode_f16(mass.values, {dim(mass.n_tokens, "n_tokens"), dim(mass.n_heads, "n_heads"),
                                             dim(mass.n_blocks, "n_blocks")});
    if (!c.recall.empty())
        recall_blob = encode_f16(c.recall, {dim(n_tokens, "n_tokens"), dim(n_heads, "n_heads")});

    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement s(*db_,
                "INSERT INTO captures(run_id, layer, n_tokens, n_groups, n_heads, n_blocks, slots, selection, recall, "
                "scores, mass, q, k, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, run).bind(2, c.layer).bind(3, n_tokens).bind(4, n_groups).bind(5, n_heads).bind(6, n_blocks);
    s.bind(7, sel.blocks.empty() ? 0 : sel.slots);
    s.bind_blob(8, selection_blob).bind_blob(9, recall_blob).bind_blob(10, scores_blob).bind_blob(11, mass_blob);
    s.bind_blob(12, q_blob).bind_blob(13, k_blob).bind_blob(14, v_blob);
    s.run();
    record_stage(run, "capture", 1, c.layer);
    txn.commit();
}

void Writer::write_kernels(int64_t run, const std::vector<KernelRecord>& kernels) {
    if (kernels.empty()) return;
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    // Kernel names repeat thousands of times: store each once. The id cache
    // lives only for this transaction, so a rolled-back insert can never leave
    // a dangling id behind for a later call.
    std::unordered_map<std::string, int64_t> ids;
    Statement add_string(*db_, "INSERT OR IGNORE INTO strings(value) VALUES (?)");
    Statement find_string(*db_, "SELECT id FROM strings WHERE value = ?");
    auto intern = [&](const std::string& text) {
        auto it = ids.find(text);
        if (it != ids.end()) return it->second;
        add_string.bind(1, text).run();
        add_string.reset();
        find_string.bind(1, text);
        if (!find_string.step()) throw std::runtime_error(path() + ": string table lost an entry");
        const int64_t id = find_string.int64(0);
        find_string.reset();
        ids.emplace(text, id);
        return id;
    };
    Statement first(*db_, "SELECT COALESCE(MAX(seq), 0) FROM kernels WHERE run_id = ?");
    first.bind(1, run).step();
    int64_t seq = first.int64(0);
    first.reset();
    Statement row(*db_,
                  "INSERT INTO kernels(run_id, seq, name_id, phase_id, layer, stream, correlation_id, grid_x, grid_y, "
                  "grid_z, block_x, block_y, block_z, registers, shared_bytes, start_ns, end_ns, flops, bytes, context) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const KernelRecord& k : kernels) {
        row.bind(1, run);
        row.bind(2, ++seq);
        row.bind(3, intern(k.name));
        row.bind(4, intern(k.phase));
        row.bind(5, k.layer);
        row.bind(6, static_cast<int64_t>(k.stream));
        row.bind(7, static_cast<int64_t>(k.correlation_id));
        for (int d = 0; d < 3; ++d) row.bind(8 + d, k.grid[d]);
        for (int d = 0; d < 3; ++d) row.bind(11 + d, k.block[d]);
        row.bind(14, k.registers);
        row.bind(15, k.shared_bytes);
        row.bind(16, static_cast<int64_t>(k.start_ns));
        row.bind(17, static_cast<int64_t>(k.end_ns));
        row.bind(18, k.flops);
        row.bind(19, k.bytes);
        row.bind(20, k.context);
        row.run();
        row.reset();
    }
    record_stage(run, "kernels", static_cast<int64_t>(kernels.size()));
    txn.commit();
}

void Writer::write_timings(int64_t run, const std::vector<StageTiming>& timings) {
    if (timings.empty()) return;
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement row(*db_,
                  "INSERT INTO timings(run_id, seq, name, ms) "
                  "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM timings WHERE run_id = ?1), ?2, ?3)");
    for (const StageTiming& t : timings) {
        row.bind(1, run).bind(2, t.name).bind(3, t.ms).run();
        row.reset();
    }
    record_stage(run, "timings", static_cast<int64_t>(timings.size()));
    txn.commit();
}

void Writer::write_summary(int64_t run, const RunResult& r) {
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement update(*db_,
                     "UPDATE runs SET perplexity_dense = ?, perplexity_msa = ?, perplexity_random = ?, "
                     "needle_hit_rate = ?, dense_attention_flops = ?, msa_attention_flops = ?, "
                     "finished_unix_ms = COALESCE(?, finished_unix_ms) WHERE id = ?");
    update.bind(1, r.perplexity_dense).bind(2, r.perplexity_msa).bind(3, r.perplexity_random);
    update.bind(4, r.needle_hit_rate).bind(5, r.dense_attention_flops).bind(6, r.msa_attention_flops);
    if (r.finished_unix_ms > 0) update.bind(7, r.finished_unix_ms);
    update.bind(8, run).run();
    Statement needle(*db_,
                     "INSERT INTO needles(run_id, seq, key, value, token_begin, token_end, question_token) "
                     "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM needles WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6)");
    for (const Needle& n : r.needles) {
        needle.bind(1, run).bind(2, n.key).bind(3, n.value).bind(4, n.token_begin).bind(5, n.token_end);
        needle.bind(6, n.question_token).run();
        needle.reset();
    }
    Statement warning(*db_,
                      "INSERT INTO warnings(run_id, seq, message) "
                      "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM warnings WHERE run_id = ?1), ?2)");
    for (const std::string& w : r.warnings) {
        warning.bind(1, run).bind(2, w).run();
        warning.reset();
    }
    record_stage(run, "summary", 1);
    record_stage(run, "needles", static_cast<int64_t>(r.needles.size()));
    record_stage(run, "warnings", static_cast<int64_t>(r.warnings.size()));
    txn.commit();
}

void Writer::write_sweep_rows(int64_t run, const nlohmann::json& rows) {
    if (!rows.is_array()) throw std::invalid_argument("write_sweep_rows expects a JSON array of objects");
    if (rows.empty()) return;
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement row(*db_,
                  "INSERT INTO sweep_rows(run_id, seq, row) "
                  "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM sweep_rows WHERE run_id = ?1), ?2)");
    for (const auto& r : rows) {
        if (!r.is_object()) throw std::invalid_argument("write_sweep_rows expects a JSON array of objects");
        row.bind(1, run).bind(2, r.dump()).run();
        row.reset();
    }
    record_stage(run, "sweep_rows", static_cast<int64_t>(rows.size()));
    txn.commit();
}

void Writer::write_config(int64_t run, const nlohmann::json& config) {
    if (!config.is_object()) throw std::invalid_argument("write_config expects a JSON object");
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement s(*db_, "INSERT OR REPLACE INTO run_configs(run_id, config) VALUES (?, ?)");
    s.bind(1, run).bind(2, config.dump()).run();
    record_stage(run, "config", 1);
    txn.commit();
}

void Writer::finish_run(int64_t run) {
    Transaction txn(*db_, Transaction::Kind::write);
    require_run(run);
    Statement s(*db_,
                "UPDATE runs SET status = 'complete', finished_unix_ms = COALESCE(finished_unix_ms, ?) WHERE id = ?");
    s.bind(1, detail::now_unix_ms()).bind(2, run).run();
    record_stage(run, "finish", 1);
    txn.commit();
}

int64_t Writer::write_run(const RunResult& r, const std::string& kind) {
    const int64_t run = begin_run(r, kind);
    write_layers(run, r.layers);
    for (const LayerCapture& c : r.captures) write_capture(run, c);
    write_kernels(run, r.kernels);
    write_timings(run, r.timings);
    write_summary(run, r);
    finish_run(run);
    return run;
}

}  // namespace msa::sessions
