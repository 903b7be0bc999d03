#pragma once
// safetensors reader: 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw data; offsets are relative to the end of the header.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/file_view.h"

namespace msa {

struct SafetensorsTensor {
    std::string name;
    std::string dtype;            // as written: F32, F16, BF16, I64, ...
    std::vector<uint64_t> shape;  // outermost first (row-major)
    uint64_t n_elements = 0;
    uint64_t offset = 0;          // absolute offset in the file
    uint64_t n_bytes = 0;
    bool known_dtype = false;     // false: size could not be checked; the tensor cannot be used
};

// Bytes per element of a safetensors dtype name, 0 when unknown.
uint64_t safetensors_dtype_size(const std::string& dtype);

class SafetensorsFile {
public:
    // Maps and parses `path`; throws InputError on anything malformed.
    explicit SafetensorsFile(const std::string& path);
    const std::string& path() const { return view_.path(); }
    uint64_t file_size() const { return view_.size(); }
    const uint8_t* file_data() const { return view_.data(); }
    const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
    const SafetensorsTensor* find(const std::string& name) const;
    const uint8_t* tensor_data(const SafetensorsTensor& tensor) const { return view_.data() + tensor.offset; }

private:
    FileView view_;
    std::vector<SafetensorsTensor> tensors_;
    std::unordered_map<std::string, size_t> index_;
};

}  // namespace msa
