#pragma once
// Thin RAII layer over the SQLite C API, used only inside sessions/.
// Errors that mean "this file is not what we expect" (not a database, corrupt)
// become msa::InputError with the file named; everything else (disk full,
// lock timeout) is a runtime failure.
#include <cstdint>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace msa::sessions::detail {

class Database;

class Statement {
public:
    Statement(Database& db, const char* sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    Statement(Statement&& other) noexcept;

    // Parameters are 1-based, as in SQLite.
    Statement& bind(int index, int64_t value);
    Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
    // NaN binds as NULL: SQLite turns NaN into NULL anyway, say so explicitly.
    Statement& bind(int index, double value);
    Statement& bind(int index, const std::string& value);
    Statement& bind_text(int index, const char* value);
    Statement& bind_blob(int index, const std::vector<uint8_t>& value);  // empty -> NULL
    Statement& bind_null(int index);

    bool step();        // true while a row is available
    void run();         // step to completion, expecting no rows
    void reset();       // reset and clear bindings, ready for the next row

    bool is_null(int col) const;
    int64_t int64(int col) const;
    int integer(int col) const;
    // NULL reads back as NaN, the inverse of bind(double).
    double real(int col) const;
    std::string text(int col) const;
    // Points into SQLite's buffer: valid until the next step/reset.
    const uint8_t* blob(int col, size_t& size) const;

private:
    Database* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

class Database {
public:
    enum class Mode { read, write };
    Database(const std::string& path, Mode mode);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    const std::string& path() const { return path_; }
    sqlite3* handle() { return db_; }
    void exec(const char* sql);
    Statement prepare(const char* sql) { return Statement(*this, sql); }
    int64_t last_insert_id() const;
    int changes() const;  // rows touched by the last statement
    bool table_exists(const std::string& name);
    // Throws InputError for NOTADB/CORRUPT, std::runtime_error otherwise.
    [[noreturn]] void fail(int rc, const std::string& doing);

private:
    std::string path_;
    sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE for writers: a deferred transaction that later wants to write
// can hit SQLITE_BUSY that no busy timeout resolves (a reader holds an older
// snapshot), so writers take the write lock up front. Readers use BEGIN
// (deferred) so that several SELECTs share one snapshot.
class Transaction {
public:
    enum class Kind { read, write };
    Transaction(Database& db, Kind kind);
    ~Transaction();
    void commit();

private:
    Database& db_;
    bool open_ = false;
};

// Checks the 100-byte SQLite header without SQLite, so the user gets a precise
// message ("not an SQLite file", "truncated") instead of SQLite's generic one.
// Returns false for a zero-length file (SQLite treats it as an empty database).
bool check_sqlite_header(const std::string& path);

}  // namespace msa::sessions::detail
