#include "sessions/schema.h"

#include <chrono>

#include "core/errors.h"
#include "sessions/sqlite_db.h"

namespace msa::sessions::detail {

namespace {

// Version 1. Per-run child tables are keyed (run_id, seq|layer) WITHOUT ROWID:
// rows are small and always read by run, so the key is the storage order.
// captures keeps a rowid because its rows are megabytes of BLOB (WITHOUT ROWID
// suits small rows only); its BLOBs go smallest first, since reading a column
// walks the overflow chains of the columns before it. q/k/v (post-RoPE
// activations, kept only by runs that want live re-pooling) come last.
constexpr const char* kSchemaV1 = R"SQL(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  status TEXT NOT NULL CHECK(status IN ('incomplete', 'complete')),
  label TEXT NOT NULL DEFAULT '',
  writer_version TEXT NOT NULL,
  model_path TEXT NOT NULL DEFAULT '',
  model_hash TEXT NOT NULL DEFAULT '',
  model_format TEXT NOT NULL DEFAULT '',
  quantization TEXT NOT NULL DEFAULT '',
  model_config TEXT NOT NULL DEFAULT '{}',
  text TEXT NOT NULL DEFAULT '',
  tokens BLOB,
  n_tokens INTEGER NOT NULL DEFAULT 0,
  k INTEGER NOT NULL, block INTEGER NOT NULL, scorer TEXT NOT NULL, sink INTEGER NOT NULL,
  index_kind TEXT NOT NULL, seed INTEGER NOT NULL,
  backend TEXT NOT NULL DEFAULT '', device TEXT NOT NULL DEFAULT '', threads INTEGER NOT NULL DEFAULT 1,
  started_unix_ms INTEGER NOT NULL DEFAULT 0,
  finished_unix_ms INTEGER,
  perplexity_dense REAL, perplexity_msa REAL, perplexity_random REAL, needle_hit_rate REAL,
  dense_attention_flops REAL, msa_attention_flops REAL
);
CREATE TABLE stages(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
  stage TEXT NOT NULL, rows INTEGER NOT NULL, layer INTEGER, committed_unix_ms INTEGER NOT NULL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
CREATE TABLE layer_metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id), layer INTEGER NOT NULL,
  recall_mean REAL, recall_p5 REAL, recall_p50 REAL, output_rel_error REAL,
  PRIMARY KEY(run_id, layer)) WITHOUT ROWID;
CREATE TABLE group_metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id), layer INTEGER NOT NULL, grp INTEGER NOT NULL,
  recall_mean REAL,
  PRIMARY KEY(run_id, layer, grp)) WITHOUT ROWID;
CREATE TABLE head_metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id), layer INTEGER NOT NULL, head INTEGER NOT NULL,
  recall_mean REAL, rel_error REAL,
  PRIMARY KEY(run_id, layer, head)) WITHOUT ROWID;
CREATE TABLE captures(
  run_id INTEGER NOT NULL REFERENCES runs(id), layer INTEGER NOT NULL,
  n_tokens INTEGER NOT NULL, n_groups INTEGER NOT NULL, n_heads INTEGER NOT NULL,
  n_blocks INTEGER NOT NULL, slots INTEGER NOT NULL,
  selection BLOB, recall BLOB, scores BLOB, mass BLOB,
  q BLOB, k BLOB, v BLOB,
  UNIQUE(run_id, layer));
CREATE TABLE strings(id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
CREATE TABLE kernels(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
  name_id INTEGER NOT NULL REFERENCES strings(id), phase_id INTEGER NOT NULL REFERENCES strings(id),
  layer INTEGER NOT NULL, stream INTEGER NOT NULL, correlation_id INTEGER NOT NULL,
  grid_x INTEGER NOT NULL, grid_y INTEGER NOT NULL, grid_z INTEGER NOT NULL,
  block_x INTEGER NOT NULL, block_y INTEGER NOT NULL, block_z INTEGER NOT NULL,
  registers INTEGER NOT NULL, shared_bytes INTEGER NOT NULL,
  start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, flops REAL, bytes REAL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
CREATE TABLE timings(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, name TEXT NOT NULL, ms REAL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
CREATE TABLE sweep_rows(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, row TEXT NOT NULL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
CREATE TABLE warnings(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, message TEXT NOT NULL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
CREATE TABLE needles(
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
  key TEXT NOT NULL, value TEXT NOT NULL,
  token_begin INTEGER NOT NULL, token_end INTEGER NOT NULL, question_token INTEGER NOT NULL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
)SQL";

// Version 2: a run's kind-specific config as one JSON object (a bench's shape,
// contexts, repetitions, peers), and the context length of each kernel launch
// (a bench times several contexts in one run).
constexpr const char* kSchemaV2 = R"SQL(
CREATE TABLE run_configs(
  run_id INTEGER PRIMARY KEY REFERENCES runs(id), config TEXT NOT NULL);
ALTER TABLE kernels ADD COLUMN context INTEGER NOT NULL DEFAULT 0;
)SQL";

bool parse_int(const std::string& text, int& out) {
    if (text.empty() || text.size() > 9) return false;
    int v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

}  // namespace

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> steps = {{1, kSchemaV1}, {2, kSchemaV2}};
    return steps;
}

const std::vector<std::string>& required_tables() {
    static const std::vector<std::string> names = {"meta",      "runs",    "stages",  "layer_metrics", "group_metrics",
                                                   "head_metrics", "captures", "strings", "kernels", "timings",
                                                   "sweep_rows", "warnings", "needles", "run_configs"};
    return names;
}

int read_schema_version(Database& db) {
    if (!db.table_exists("meta")) {
        Statement any(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
        any.step();
        if (any.int64(0) == 0) return 0;
        throw InputError(db.path() + ": not an msascope session (an SQLite file without a meta table)");
    }
    Statement s(db, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (!s.step()) throw InputError(db.path() + ": not an msascope session (meta has no schema_version)");
    int version = 0;
    const std::string text = s.text(0);
    if (!parse_int(text, version) || version < 1)
        throw InputError(db.path() + ": damaged session file (schema_version '" + text + "')");
    if (version > kSchemaVersion)
        throw InputError(db.path() + " was written by a newer msascope (schema " + std::to_string(version) + " > " +
                         std::to_string(kSchemaVersion) + ")");
    return version;
}

void migrate(Database& db, int from, int to) {
    for (const Migration& step : migrations()) {
        if (step.to_version <= from || step.to_version > to) continue;
        db.exec(step.sql);
    }
    if (from == 0) {
        Statement created(db, "INSERT INTO meta(key, value) VALUES ('created_by', ?), ('created_unix_ms', ?)");
        created.bind(1, std::string(kWriterVersion)).bind(2, std::to_string(now_unix_ms())).run();
    }
    Statement version(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)");
    version.bind(1, std::to_string(to)).run();
}

void check_tables(Database& db) {
    for (const std::string& name : required_tables())
        if (!db.table_exists(name)) throw InputError(db.path() + ": damaged session file (missing table '" + name + "')");
}

int64_t now_unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
    return {{"arch", c.arch},
            {"n_layers", c.n_layers},
            {"hidden", c.hidden},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"ffn", c.ffn},
            {"vocab", c.vocab},
            {"context_length", c.context_length},
            {"rms_eps", c.rms_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling",
             {{"type", c.rope_scaling.type},
              {"factor", c.rope_scaling.factor},
              {"low_freq_factor", c.rope_scaling.low_freq_factor},
              {"high_freq_factor", c.rope_scaling.high_freq_factor},
              {"original_context", c.rope_scaling.original_context}}},
            {"tied_embeddings", c.tied_embeddings},
            {"qkv_bias", c.qkv_bias}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
    ModelConfig c;
    if (!j.is_object()) return c;
    c.arch = j.value("arch", c.arch);
    c.n_layers = j.value("n_layers", c.n_layers);
    c.hidden = j.value("hidden", c.hidden);
    c.n_heads = j.value("n_heads", c.n_heads);
    c.n_kv_heads = j.value("n_kv_heads", c.n_kv_heads);
    c.head_dim = j.value("head_dim", c.head_dim);
    c.ffn = j.value("ffn", c.ffn);
    c.vocab = j.value("vocab", c.vocab);
    c.context_length = j.value("context_length", c.context_length);
    c.rms_eps = j.value("rms_eps", c.rms_eps);
    c.rope_theta = j.value("rope_theta", c.rope_theta);
    if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
        const auto& r = j["rope_scaling"];
        c.rope_scaling.type = r.value("type", c.rope_scaling.type);
        c.rope_scaling.factor = r.value("factor", c.rope_scaling.factor);
        c.rope_scaling.low_freq_factor = r.value("low_freq_factor", c.rope_scaling.low_freq_factor);
        c.rope_scaling.high_freq_factor = r.value("high_freq_factor", c.rope_scaling.high_freq_factor);
        c.rope_scaling.original_context = r.value("original_context", c.rope_scaling.original_context);
    }
    c.tied_embeddings = j.value("tied_embeddings", c.tied_embeddings);
    c.qkv_bias = j.value("qkv_bias", c.qkv_bias);
    return c;
}

}  // namespace msa::sessions::detail
