#include "core/gguf.h"

#include <cmath>
#include <limits>

#include "core/errors.h"

namespace msa {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr int kMaxArrayNesting = 8;          // real files nest at most once; bounds recursion on hostile input
constexpr uint32_t kMaxDims = 4;             // GGML_MAX_DIMS

// Smallest number of bytes one value of `type` occupies in the file: used to
// reject counts that could not possibly fit in what is left of the file
// before anything is allocated for them.
uint64_t min_encoded_size(GgufValueType type) {
    switch (type) {
        case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
        case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
        case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
        case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
        case GgufValueType::STRING: return 8;   // the length prefix
        case GgufValueType::ARRAY: return 12;   // element type + count
    }
    return 0;
}

bool valid_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

std::string read_string(ByteReader& in, const char* what) {
    uint64_t length = in.read<uint64_t>(what);
    return in.read_bytes(length, what);  // checks length against the bytes left
}

void read_value(ByteReader& in, GgufValueType type, GgufValue& out, const std::string& key, int depth) {
    out.type = type;
    switch (type) {
        case GgufValueType::UINT8: out.u = in.read<uint8_t>("a metadata value"); return;
        case GgufValueType::INT8: out.i = in.read<int8_t>("a metadata value"); return;
        case GgufValueType::UINT16: out.u = in.read<uint16_t>("a metadata value"); return;
        case GgufValueType::INT16: out.i = in.read<int16_t>("a metadata value"); return;
        case GgufValueType::UINT32: out.u = in.read<uint32_t>("a metadata value"); return;
        case GgufValueType::INT32: out.i = in.read<int32_t>("a metadata value"); return;
        case GgufValueType::UINT64: out.u = in.read<uint64_t>("a metadata value"); return;
        case GgufValueType::INT64: out.i = in.read<int64_t>("a metadata value"); return;
        case GgufValueType::FLOAT32: out.f = in.read<float>("a metadata value"); return;
        case GgufValueType::FLOAT64: out.f = in.read<double>("a metadata value"); return;
        case GgufValueType::BOOL: {
            uint8_t b = in.read<uint8_t>("a metadata value");
            if (b > 1) throw InputError(in.label() + ": metadata " + key + " has a bool byte of " + std::to_string(b));
            out.u = b;
            return;
        }
        case GgufValueType::STRING: out.s = read_string(in, "a metadata string"); return;
        case GgufValueType::ARRAY: {
            if (depth >= kMaxArrayNesting) throw InputError(in.label() + ": metadata " + key + " nests arrays too deeply");
            uint32_t raw_element = in.read<uint32_t>("an array element type");
            if (!valid_value_type(raw_element))
                throw InputError(in.label() + ": metadata " + key + " has unknown array element type " + std::to_string(raw_element));
            out.element_type = static_cast<GgufValueType>(raw_element);
            uint64_t count = in.read<uint64_t>("an array length");
            if (count > in.remaining() / min_encoded_size(out.element_type))
                throw InputError(in.label() + ": metadata " + key + " claims " + std::to_string(count) +
                                 " array elements, more than the file can hold");
            out.array.resize(count);
            for (auto& element : out.array) read_value(in, out.element_type, element, key, depth + 1);
            return;
        }
    }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
    switch (type) {
        case GgufValueType::UINT8: return "uint8";
        case GgufValueType::INT8: return "int8";
        case GgufValueType::UINT16: return "uint16";
        case GgufValueType::INT16: return "int16";
        case GgufValueType::UINT32: return "uint32";
        case GgufValueType::INT32: return "int32";
        case GgufValueType::FLOAT32: return "float32";
        case GgufValueType::BOOL: return "bool";
        case GgufValueType::STRING: return "string";
        case GgufValueType::ARRAY: return "array";
        case GgufValueType::UINT64: return "uint64";
        case GgufValueType::INT64: return "int64";
        case GgufValueType::FLOAT64: return "float64";
    }
    return "?";
}

bool GgufValue::is_integer() const {
    switch (type) {
        case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
        case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
            return true;
        default:
            return false;
    }
}

bool GgufValue::is_number() const {
    return is_integer() || type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64;
}

int64_t GgufValue::to_int(const std::string& label, const std::string& key) const {
    switch (type) {
        case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32: case GgufValueType::UINT64:
            if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw InputError(label + ": metadata " + key + " is out of range");
            return static_cast<int64_t>(u);
        case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64:
            return i;
        default:
            throw InputError(label + ": metadata " + key + " should be an integer, is " + gguf_value_type_name(type));
    }
}

double GgufValue::to_double(const std::string& label, const std::string& key) const {
    if (type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64) return f;
    if (is_integer()) return static_cast<double>(to_int(label, key));
    throw InputError(label + ": metadata " + key + " should be a number, is " + gguf_value_type_name(type));
}

bool GgufValue::to_bool(const std::string& label, const std::string& key) const {
    if (type == GgufValueType::BOOL) return u != 0;
    throw InputError(label + ": metadata " + key + " should be a bool, is " + gguf_value_type_name(type));
}

const std::string& GgufValue::to_string(const std::string& label, const std::string& key) const {
    if (type == GgufValueType::STRING) return s;
    throw InputError(label + ": metadata " + key + " should be a string, is " + gguf_value_type_name(type));
}

GgufFile::GgufFile(const std::string& path) : view_(path) {
    ByteReader in(view_.data(), view_.size(), path);
    uint32_t magic = in.read<uint32_t>("the GGUF magic");
    if (magic != kGgufMagic) throw InputError(path + ": not a GGUF file (bad magic)");
    version_ = in.read<uint32_t>("the GGUF version");
    if (version_ == 1) throw InputError(path + ": GGUF version 1 is not supported (re-convert the model)");
    if (version_ != 2 && version_ != 3) throw InputError(path + ": unsupported GGUF version " + std::to_string(version_));
    uint64_t tensor_count = in.read<uint64_t>("the tensor count");
    uint64_t kv_count = in.read<uint64_t>("the metadata count");
    // A key/value needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor
    // info at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    if (kv_count > in.remaining() / 13) throw InputError(path + ": metadata count " + std::to_string(kv_count) + " is larger than the file can hold");
    if (tensor_count > in.remaining() / 32) throw InputError(path + ": tensor count " + std::to_string(tensor_count) + " is larger than the file can hold");

    metadata_.reserve(kv_count);
    for (uint64_t k = 0; k < kv_count; ++k) {
        std::string key = read_string(in, "a metadata key");
        uint32_t raw_type = in.read<uint32_t>("a metadata value type");
        if (!valid_value_type(raw_type))
            throw InputError(path + ": metadata " + key + " has unknown value type " + std::to_string(raw_type));
        GgufValue value;
        read_value(in, static_cast<GgufValueType>(raw_type), value, key, 0);
        if (!metadata_index_.emplace(key, metadata_.size()).second)
            throw InputError(path + ": metadata key " + key + " appears twice");
        metadata_.emplace_back(std::move(key), std::move(value));
    }

    if (const GgufValue* align = find("general.alignment")) {
        int64_t a = align->to_int(path, "general.alignment");
        if (a <= 0 || (a & (a - 1)) != 0 || a > (1 << 24))
            throw InputError(path + ": general.alignment " + std::to_string(a) + " is not a power of two");
        alignment_ = static_cast<uint64_t>(a);
    }

    tensors_.reserve(tensor_count);
    for (uint64_t t = 0; t < tensor_count; ++t) {
        GgufTensorInfo info;
        info.name = read_string(in, "a tensor name");
        uint32_t n_dims = in.read<uint32_t>("a tensor's dimension count");
        if (n_dims == 0 || n_dims > kMaxDims)
            throw InputError(path + ": tensor " + info.name + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
        info.n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            uint64_t dim = in.read<uint64_t>("a tensor dimension");
            // ggml stores dims as int64; anything at or above 2^62 elements is nonsense and could overflow sums below.
            if (dim > (uint64_t(1) << 62) ||
                (dim != 0 && info.n_elements > (uint64_t(1) << 62) / dim))
                throw InputError(path + ": tensor " + info.name + " has an absurd shape");
            info.dims.push_back(dim);
            info.n_elements *= dim;
        }
        info.type = in.read<uint32_t>("a tensor type");
        uint64_t relative_offset = in.read<uint64_t>("a tensor offset");
        if (relative_offset % alignment_ != 0)
            throw InputError(path + ": tensor " + info.name + " offset " + std::to_string(relative_offset) +
                             " is not a multiple of the alignment " + std::to_string(alignment_));
        GgmlTypeTraits traits = ggml_type_traits(info.type);
        if (traits.name) {
            info.known_type = true;
            if (info.dims[0] % traits.block_elements != 0)
                throw InputError(path + ": tensor " + info.name + " row length " + std::to_string(info.dims[0]) +
                                 " is not a multiple of the " + traits.name + " block size " +
                                 std::to_string(traits.block_elements));
            uint64_t blocks = info.n_elements / traits.block_elements;
            if (blocks > std::numeric_limits<uint64_t>::max() / traits.block_bytes)
                throw InputError(path + ": tensor " + info.name + " has an absurd size");
            info.n_bytes = blocks * traits.block_bytes;
        }
        info.offset = relative_offset;  // made absolute once the data section start is known
        if (!tensor_index_.emplace(info.name, tensors_.size()).second)
            throw InputError(path + ": tensor name " + info.name + " appears twice");
        tensors_.push_back(std::move(info));
    }

    // The data section starts at the next multiple of the alignment after the tensor infos.
    uint64_t end_of_infos = in.position();
    data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
    if (tensor_count > 0 && data_offset_ > view_.size())
        throw InputError(path + ": file ends before the tensor data section");
    for (auto& info : tensors_) {
        if (info.offset > view_.size() || data_offset_ > view_.size() - info.offset)
            throw InputError(path + ": tensor " + info.name + " starts past the end of the file");
        info.offset += data_offset_;
        if (info.known_type && !view_.contains(info.offset, info.n_bytes))
            throw InputError(path + ": tensor " + info.name + " (" + std::to_string(info.n_bytes) +
                             " bytes at offset " + std::to_string(info.offset) + ") runs past the end of the file (" +
                             std::to_string(view_.size()) + " bytes)");
    }
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = metadata_index_.find(key);
    return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
    if (!tensor.known_type)
        throw InputError(path() + ": tensor " + tensor.name + " has unknown type " + ggml_type_name(tensor.type));
    return view_.data() + tensor.offset;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
    const GgufValue* v = find(key);
    return v ? v->to_int(path(), key) : fallback;
}

int64_t GgufFile::require_int(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) throw InputError(path() + ": metadata " + key + " is missing");
    return v->to_int(path(), key);
}

double GgufFile::get_double(const std::string& key, double fallback) const {
    const GgufValue* v = find(key);
    return v ? v->to_double(path(), key) : fallback;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
    const GgufValue* v = find(key);
    return v ? v->to_string(path(), key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
    const GgufValue* v = find(key);
    return v ? v->to_bool(path(), key) : fallback;
}

}  // namespace msa
