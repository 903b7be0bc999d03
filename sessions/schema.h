#pragma once
// The session schema, its forward migrations, and the checks every open runs.
// Internal to sessions/ (tests may use it to build odd files).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/model.h"

namespace msa::sessions::detail {

class Database;

// Bump when the schema changes and append a Migration that takes version
// N-1 to N; never edit a published step (files in the wild were made by it).
constexpr int kSchemaVersion = 2;
constexpr const char* kWriterVersion = "msascope 0.1";

struct Migration {
    int to_version;
    const char* sql;
};
const std::vector<Migration>& migrations();

// Tables a current session must have; a file missing one is damaged.
const std::vector<std::string>& required_tables();

// 0 for a database without any table (a new file); InputError when there are
// tables but no usable meta (not an msascope session) or the version is newer
// than this build reads. Call inside a transaction.
int read_schema_version(Database& db);

// Applies every step after `from` up to `to`, then records the version.
// Call inside a write transaction.
void migrate(Database& db, int from, int to = kSchemaVersion);

// InputError naming the first missing table.
void check_tables(Database& db);

int64_t now_unix_ms();

nlohmann::json model_config_to_json(const ModelConfig& config);
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace msa::sessions::detail
