#pragma once
// GGUF (v2 and v3) reader: header, metadata key/values, tensor infos. The file
// is memory-mapped; tensor data is not touched until a caller asks for it.
// Every count, length, dimension and offset is checked against the file, so a
// truncated or hostile file ends in an InputError, never an out-of-bounds read
// or a huge allocation.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dequant.h"
#include "core/file_view.h"

namespace msa {

// gguf_type ids as written in the file.
enum class GgufValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GgufValue {
    GgufValueType type = GgufValueType::UINT8;
    // Scalars keep their value in the widest field of their kind.
    uint64_t u = 0;          // unsigned ints, bool
    int64_t i = 0;           // signed ints
    double f = 0;            // floats
    std::string s;           // STRING
    GgufValueType element_type = GgufValueType::UINT8;  // ARRAY
    std::vector<GgufValue> array;                         // ARRAY (may nest)

    bool is_integer() const;
    bool is_number() const;  // integer or float
    // Conversions that throw InputError("<label>: metadata <key> ...") on a wrong type or range.
    int64_t to_int(const std::string& label, const std::string& key) const;
    double to_double(const std::string& label, const std::string& key) const;
    bool to_bool(const std::string& label, const std::string& key) const;
    const std::string& to_string(const std::string& label, const std::string& key) const;
};

const char* gguf_value_type_name(GgufValueType type);

struct GgufTensorInfo {
    std::string name;
    std::vector<uint64_t> dims;  // as in the file: fastest-varying first
    uint32_t type = 0;           // raw ggml_type id (may be unknown to us)
    uint64_t offset = 0;         // absolute offset of the data in the file
    uint64_t n_elements = 0;
    uint64_t n_bytes = 0;        // 0 and known_type == false for unknown types
    bool known_type = false;
};

class GgufFile {
public:
    // Maps and parses `path`. Throws InputError on anything malformed.
    explicit GgufFile(const std::string& path);

    const std::string& path() const { return view_.path(); }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }
    uint64_t file_size() const { return view_.size(); }
    const uint8_t* file_data() const { return view_.data(); }

    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
    const GgufValue* find(const std::string& key) const;
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const;
    // Pointer to a tensor's bytes; throws InputError when its type is unknown.
    const uint8_t* tensor_data(const GgufTensorInfo& tensor) const;

    // Metadata helpers: the typed value at `key`, or `fallback` when absent; wrong types throw.
    int64_t get_int(const std::string& key, int64_t fallback) const;
    int64_t require_int(const std::string& key) const;
    double get_double(const std::string& key, double fallback) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;
    bool get_bool(const std::string& key, bool fallback) const;

private:
    FileView view_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> metadata_;
    std::unordered_map<std::string, size_t> metadata_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace msa
