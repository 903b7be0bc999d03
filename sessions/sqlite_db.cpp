#include "sessions/sqlite_db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/errors.h"

namespace msa::sessions::detail {

namespace {

uint32_t read_be32(const unsigned char* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

bool is_bad_file_code(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT;
}

}  // namespace

bool check_sqlite_header(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) throw InputError(path + ": no such file");
    if (S_ISDIR(info.st_mode)) throw InputError(path + ": is a directory, not a session file");
    const uint64_t size = static_cast<uint64_t>(info.st_size);
    if (size == 0) return false;
    unsigned char header[100];
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": cannot be read");
    if (size < sizeof header || !in.read(reinterpret_cast<char*>(header), sizeof header))
        throw InputError(path + ": not an SQLite file (only " + std::to_string(size) + " bytes)");
    if (std::memcmp(header, "SQLite format 3", 16) != 0) throw InputError(path + ": not an SQLite file");
    uint32_t page_size = (uint32_t(header[16]) << 8) | header[17];
    if (page_size == 1) page_size = 65536;
    if (page_size < 512 || (page_size & (page_size - 1)) != 0)
        throw InputError(path + ": corrupt SQLite header (page size " + std::to_string(page_size) + ")");
    // The in-header page count is only trustworthy when "version-valid-for"
    // matches the change counter. With a non-empty WAL the main file may lag
    // (pages not yet checkpointed, or a checkpoint cut short by a kill), and
    // SQLite repairs that itself, so only a WAL-less file is held to its header.
    const uint32_t change_counter = read_be32(header + 24);
    const uint32_t page_count = read_be32(header + 28);
    const uint32_t valid_for = read_be32(header + 92);
    struct stat wal {};
    const bool wal_has_frames = ::stat((path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
    if (!wal_has_frames && page_count > 0 && valid_for == change_counter) {
        const uint64_t expected = uint64_t(page_size) * page_count;
        if (size < expected)
            throw InputError(path + ": truncated SQLite file (" + std::to_string(size) + " bytes, header says " +
                             std::to_string(expected) + ")");
    }
    return true;
}

// ---------------------------------------------------------------- Database

Database::Database(const std::string& path, Mode mode) : path_(path) {
    // READWRITE even for readers: the first connection after a crash must
    // rebuild the WAL index, which needs write access to the -shm file. SQLite
    // falls back to read-only by itself when the OS forbids writing.
    const int flags = mode == Mode::write ? (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) : SQLITE_OPEN_READWRITE;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw InputError(path + ": cannot open (" + message + ")");
    }
    sqlite3_extended_result_codes(db_, 1);
    // A writer holds the lock only for one stage's transaction; 10 s covers a
    // large capture being committed by another process.
    sqlite3_busy_timeout(db_, 10000);
}

Database::~Database() { sqlite3_close_v2(db_); }

void Database::fail(int rc, const std::string& doing) {
    std::string message = sqlite3_errmsg(db_);
    if ((rc & 0xff) == SQLITE_NOTADB) throw InputError(path_ + ": not an SQLite file");
    if (is_bad_file_code(rc)) throw InputError(path_ + ": damaged session file (" + message + " while " + doing + ")");
    throw std::runtime_error(path_ + ": SQLite error while " + doing + ": " + message);
}

void Database::exec(const char* sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        sqlite3_free(error);
        fail(rc, std::string("running ") + std::string(sql).substr(0, 40));
    }
}

int64_t Database::last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

bool Database::table_exists(const std::string& name) {
    Statement s(*this, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    s.bind(1, name);
    return s.step();
}

// ---------------------------------------------------------------- Statement

Statement::Statement(Database& db, const char* sql) : db_(&db) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, std::string("preparing ") + std::string(sql).substr(0, 40));
}

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, int64_t value) {
    const int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) db_->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bind(int index, double value) {
    if (std::isnan(value)) return bind_null(index);
    const int rc = sqlite3_bind_double(stmt_, index, value);
    if (rc != SQLITE_OK) db_->fail(rc, "binding a value");
    return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
    const int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) db_->fail(rc, "binding text");
    return *this;
}

Statement& Statement::bind_text(int index, const char* value) { return bind(index, std::string(value)); }

Statement& Statement::bind_blob(int index, const std::vector<uint8_t>& value) {
    if (value.empty()) return bind_null(index);
    // SQLITE_STATIC: the caller's vector outlives the step() that reads it.
    const int rc = sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
    if (rc != SQLITE_OK) db_->fail(rc, "binding a BLOB");
    return *this;
}

Statement& Statement::bind_null(int index) {
    const int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK) db_->fail(rc, "binding NULL");
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_->fail(rc, std::string("running ") + std::string(sqlite3_sql(stmt_)).substr(0, 40));
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
int Statement::integer(int col) const { return sqlite3_column_int(stmt_, col); }

double Statement::real(int col) const {
    if (is_null(col)) return NAN;
    return sqlite3_column_double(stmt_, col);
}

std::string Statement::text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

const uint8_t* Statement::blob(int col, size_t& size) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    size = static_cast<size_t>(sqlite3_column_bytes(stmt_, col));
    return static_cast<const uint8_t*>(p);
}

// ---------------------------------------------------------------- Transaction

Transaction::Transaction(Database& db, Kind kind) : db_(db) {
    db_.exec(kind == Kind::write ? "BEGIN IMMEDIATE" : "BEGIN");
    open_ = true;
}

Transaction::~Transaction() {
    if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    db_.exec("COMMIT");
    open_ = false;
}

}  // namespace msa::sessions::detail
