#include "core/safetensors.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace msa {
namespace {
// The reference implementation refuses headers above 100 MB; a larger value is
// a corrupt or hostile file, and we would otherwise copy it into a string.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
}  // namespace

uint64_t safetensors_dtype_size(const std::string& dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
    return 0;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : view_(path) {
    ByteReader in(view_.data(), view_.size(), path);
    uint64_t header_bytes = in.read<uint64_t>("the safetensors header length");
    if (header_bytes > kMaxHeaderBytes)
        throw InputError(path + ": safetensors header length " + std::to_string(header_bytes) + " is absurd");
    std::string header_text = in.read_bytes(header_bytes, "the safetensors header");
    const uint64_t data_start = 8 + header_bytes;
    const uint64_t data_bytes = view_.size() - data_start;

    nlohmann::json header;
    try {
        header = nlohmann::json::parse(header_text);
    } catch (const nlohmann::json::exception&) {
        throw InputError(path + ": safetensors header is not valid JSON");
    }
    if (!header.is_object()) throw InputError(path + ": safetensors header is not a JSON object");

    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        const std::string& name = it.key();
        const nlohmann::json& entry = it.value();
        auto bad = [&](const std::string& what) { return InputError(path + ": tensor " + name + " " + what); };
        if (!entry.is_object()) throw bad("is not a JSON object");
        auto dtype = entry.find("dtype");
        auto shape = entry.find("shape");
        auto offsets = entry.find("data_offsets");
        if (dtype == entry.end() || !dtype->is_string()) throw bad("has no dtype string");
        if (shape == entry.end() || !shape->is_array()) throw bad("has no shape array");
        if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
            !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
            throw bad("has no [begin, end] data_offsets");

        SafetensorsTensor tensor;
        tensor.name = name;
        tensor.dtype = dtype->get<std::string>();
        if (shape->size() > 8) throw bad("has more than 8 dimensions");
        tensor.n_elements = 1;
        for (const auto& dim_json : *shape) {
            if (!dim_json.is_number_unsigned()) throw bad("has a shape entry that is not a non-negative integer");
            uint64_t dim = dim_json.get<uint64_t>();
            if (dim > (uint64_t(1) << 62) || (dim != 0 && tensor.n_elements > (uint64_t(1) << 62) / dim))
                throw bad("has an absurd shape");
            tensor.shape.push_back(dim);
            tensor.n_elements *= dim;
        }
        uint64_t begin = (*offsets)[0].get<uint64_t>();
        uint64_t end = (*offsets)[1].get<uint64_t>();
        if (begin > end) throw bad("has data_offsets with begin after end");
        if (end > data_bytes)
            throw bad("data (bytes " + std::to_string(begin) + ".." + std::to_string(end) + ") runs past the end of the file");
        tensor.offset = data_start + begin;
        tensor.n_bytes = end - begin;
        uint64_t element_bytes = safetensors_dtype_size(tensor.dtype);
        if (element_bytes) {
            tensor.known_dtype = true;
            if (tensor.n_bytes / element_bytes != tensor.n_elements || tensor.n_bytes % element_bytes != 0)
                throw bad("holds " + std::to_string(tensor.n_bytes) + " bytes, its " + tensor.dtype + " shape needs " +
                          std::to_string(tensor.n_elements) + " x " + std::to_string(element_bytes));
        }
        index_.emplace(name, tensors_.size());  // JSON object keys are already unique after parsing
        tensors_.push_back(std::move(tensor));
    }
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace msa
