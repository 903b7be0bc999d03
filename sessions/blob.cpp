#include "sessions/blob.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace msa::sessions {

namespace {

constexpr uint8_t kMagic[4] = {'M', 'S', 'A', 'B'};
constexpr uint8_t kFormatVersion = 1;
constexpr int kMaxDims = 4;

size_t dtype_size(DType t) {
    switch (t) {
        case DType::u8: return 1;
        case DType::i16: return 2;
        case DType::f16: return 2;
        case DType::i32: return 4;
        case DType::f32: return 4;
        case DType::f64: return 8;
    }
    return 0;
}

const char* dtype_name(DType t) {
    switch (t) {
        case DType::u8: return "u8";
        case DType::i16: return "i16";
        case DType::f16: return "f16";
        case DType::i32: return "i32";
        case DType::f32: return "f32";
        case DType::f64: return "f64";
    }
    return "?";
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint32_t get_u32(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

uint64_t checked_elements(const std::vector<uint32_t>& dims) {
    uint64_t n = 1;
    for (uint32_t d : dims) {
        // 2^40 elements is far beyond any capture; the cap keeps the product from overflowing.
        if (d != 0 && n > (uint64_t(1) << 40) / d) throw BlobError("array dimensions overflow");
        n *= d;
    }
    return n;
}

std::vector<uint8_t> header(DType dtype, Codec codec, const std::vector<uint32_t>& dims, uint64_t expected_elements) {
    if (dims.empty() || dims.size() > kMaxDims) throw BlobError("BLOB arrays have 1 to 4 dimensions");
    if (checked_elements(dims) != expected_elements)
        throw BlobError("array has " + std::to_string(expected_elements) + " elements, shape says " +
                        std::to_string(checked_elements(dims)));
    std::vector<uint8_t> out(kMagic, kMagic + 4);
    out.push_back(kFormatVersion);
    out.push_back(static_cast<uint8_t>(dtype));
    out.push_back(static_cast<uint8_t>(codec));
    out.push_back(static_cast<uint8_t>(dims.size()));
    for (uint32_t d : dims) put_u32(out, d);
    return out;
}

template <typename T>
void append_raw(std::vector<uint8_t>& out, const T* values, size_t n) {
    // Session files are little endian; so is every machine msascope targets.
    static_assert(sizeof(T) <= 8, "element too large");
    const size_t offset = out.size();
    out.resize(offset + n * sizeof(T));
    if (n) std::memcpy(out.data() + offset, values, n * sizeof(T));
}

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

void put_varint(std::vector<uint8_t>& out, uint32_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
}

uint32_t get_varint(const uint8_t*& p, const uint8_t* end) {
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (p >= end) throw BlobError("selection BLOB ends inside a value");
        const uint8_t byte = *p++;
        v |= uint64_t(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (v > uint64_t(std::numeric_limits<int32_t>::max())) throw BlobError("selection BLOB value out of range");
            return static_cast<uint32_t>(v);
        }
    }
    throw BlobError("selection BLOB has an over-long value");
}

// Rows of [rows, slots] (row-major); `stride` = how many rows back the same
// group of the previous query sits (the group count for [N, G, slots]).
uint64_t row_stride(const std::vector<uint32_t>& dims) {
    uint64_t stride = 1;
    for (size_t i = 1; i + 1 < dims.size(); ++i) stride *= dims[i];
    return stride;
}

bool rows_are_sorted_ids(const std::vector<int32_t>& values, uint32_t slots) {
    if (slots == 0) return false;
    for (size_t row = 0; row < values.size(); row += slots) {
        bool padding = false;
        int64_t previous = -1;
        for (uint32_t s = 0; s < slots; ++s) {
            const int32_t v = values[row + s];
            if (v == -1) {
                padding = true;
            } else if (padding || v < 0 || v <= previous) {
                return false;
            } else {
                previous = v;
            }
        }
    }
    return true;
}

std::vector<int32_t> decode_sorted_rows(const BlobInfo& info, const uint8_t* data, size_t size) {
    const uint32_t slots = info.dims.back();
    const uint64_t total = info.elements();
    const uint64_t rows = slots ? total / slots : 0;
    const uint8_t* p = data + info.payload_offset;
    const uint8_t* end = data + size;
    // Every row costs at least one byte: refuse a header that promises more
    // rows than the payload can hold before allocating for them.
    if (rows > static_cast<uint64_t>(end - p)) throw BlobError("selection BLOB is shorter than its shape");
    const uint64_t stride = row_stride(info.dims);
    std::vector<int32_t> out(total, -1);
    for (uint64_t r = 0; r < rows; ++r) {
        int32_t* row = out.data() + r * slots;
        const uint32_t v = get_varint(p, end);
        if (v == 0) {
            if (r < stride) throw BlobError("selection BLOB repeats a row that does not exist");
            std::memcpy(row, row - stride * slots, slots * sizeof(int32_t));
            continue;
        }
        const uint32_t count = v - 1;
        if (count > slots) throw BlobError("selection BLOB row longer than its slots");
        int64_t id = -1;
        for (uint32_t s = 0; s < count; ++s) {
            const uint32_t x = get_varint(p, end);
            id = s == 0 ? int64_t(x) : id + int64_t(x) + 1;
            if (id > std::numeric_limits<int32_t>::max()) throw BlobError("selection BLOB id out of range");
            row[s] = static_cast<int32_t>(id);
        }
    }
    if (p != end) throw BlobError("selection BLOB has trailing bytes");
    return out;
}

std::string shape_text(const std::vector<uint32_t>& dims) {
    std::string text;
    for (uint32_t d : dims) text += (text.empty() ? "" : "x") + std::to_string(d);
    return text;
}

BlobInfo checked_info(const uint8_t* data, size_t size, std::vector<uint32_t>* dims, const std::vector<uint32_t>* expect) {
    BlobInfo info = read_blob_info(data, size);
    if (expect && info.dims != *expect)
        throw BlobError("shape " + shape_text(info.dims) + " does not match the expected " + shape_text(*expect));
    if (dims) *dims = info.dims;
    return info;
}

}  // namespace

uint64_t BlobInfo::elements() const { return checked_elements(dims); }

BlobInfo read_blob_info(const uint8_t* data, size_t size) {
    if (!data || size < 8) throw BlobError("BLOB too short for a header (" + std::to_string(size) + " bytes)");
    if (std::memcmp(data, kMagic, 4) != 0) throw BlobError("BLOB has a bad magic");
    if (data[4] != kFormatVersion) throw BlobError("BLOB format version " + std::to_string(data[4]) + " is unknown");
    BlobInfo info;
    if (data[5] < 1 || data[5] > 6) throw BlobError("BLOB has unknown dtype " + std::to_string(data[5]));
    info.dtype = static_cast<DType>(data[5]);
    if (data[6] > 1) throw BlobError("BLOB has unknown codec " + std::to_string(data[6]));
    info.codec = static_cast<Codec>(data[6]);
    const int ndim = data[7];
    if (ndim < 1 || ndim > kMaxDims) throw BlobError("BLOB has " + std::to_string(ndim) + " dimensions");
    info.payload_offset = 8 + 4 * static_cast<size_t>(ndim);
    if (size < info.payload_offset) throw BlobError("BLOB too short for its dimensions");
    for (int i = 0; i < ndim; ++i) info.dims.push_back(get_u32(data + 8 + 4 * i));
    const uint64_t n = info.elements();
    const uint64_t payload = size - info.payload_offset;
    if (info.codec == Codec::raw) {
        if (n * dtype_size(info.dtype) != payload)
            throw BlobError("BLOB size mismatch: header says " + std::to_string(n) + " " + dtype_name(info.dtype) +
                            " values (" + std::to_string(n * dtype_size(info.dtype)) + " bytes), payload has " +
                            std::to_string(payload));
    } else {
        if (info.dtype != DType::i32 || ndim < 2) throw BlobError("sorted-rows BLOB must be an i32 array of rows");
        if (info.dims.back() > kMaxSlots) throw BlobError("sorted-rows BLOB has " + std::to_string(info.dims.back()) + " slots");
        if (n > kMaxDecodedElements) throw BlobError("sorted-rows BLOB claims " + std::to_string(n) + " values");
    }
    return info;
}

uint16_t float_to_half(float value) {
    uint32_t x;
    std::memcpy(&x, &value, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t exponent = (x >> 23) & 0xff;
    uint32_t mantissa = x & 0x7fffff;
    if (exponent == 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >> 13) : 0);
    const int e = static_cast<int>(exponent) - 127 + 15;
    if (e >= 31) return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10) return sign;
        mantissa |= 0x800000;
        const int shift = 14 - e;
        uint32_t h = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (uint32_t(e) << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1fff;
    // A carry out of the mantissa bumps the exponent, up to infinity: correct rounding.
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
}

float half_to_float(uint16_t half) {
    const uint32_t sign = uint32_t(half & 0x8000) << 16;
    const uint32_t exponent = (half >> 10) & 0x1f;
    const uint32_t mantissa = half & 0x3ff;
    uint32_t x;
    if (exponent == 0) {
        const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) {
        x = sign | 0x7f800000 | (mantissa << 13);
    } else {
        x = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

std::vector<uint8_t> encode_f32(const std::vector<float>& values, const std::vector<uint32_t>& dims) {
    auto out = header(DType::f32, Codec::raw, dims, values.size());
    append_raw(out, values.data(), values.size());
    return out;
}

std::vector<uint8_t> encode_f16(const std::vector<float>& values, const std::vector<uint32_t>& dims) {
    auto out = header(DType::f16, Codec::raw, dims, values.size());
    std::vector<uint16_t> halves(values.size());
    for (size_t i = 0; i < values.size(); ++i) halves[i] = float_to_half(values[i]);
    append_raw(out, halves.data(), halves.size());
    return out;
}

std::vector<uint8_t> encode_f16_or_f32(const std::vector<float>& values, const std::vector<uint32_t>& dims) {
    constexpr float kLargestHalf = 65504.0f;
    for (float x : values)
        if (!(std::fabs(x) <= kLargestHalf)) return encode_f32(values, dims);  // also catches NaN
    return encode_f16(values, dims);
}

std::vector<uint8_t> encode_f64(const std::vector<double>& values, const std::vector<uint32_t>& dims) {
    auto out = header(DType::f64, Codec::raw, dims, values.size());
    append_raw(out, values.data(), values.size());
    return out;
}

std::vector<uint8_t> encode_i32(const std::vector<int32_t>& values, const std::vector<uint32_t>& dims) {
    auto out = header(DType::i32, Codec::raw, dims, values.size());
    append_raw(out, values.data(), values.size());
    return out;
}

std::vector<uint8_t> encode_ids(const std::vector<int32_t>& values, const std::vector<uint32_t>& dims) {
    const uint32_t slots = dims.empty() ? 0 : dims.back();
    if (dims.size() >= 2 && rows_are_sorted_ids(values, slots)) {
        auto out = header(DType::i32, Codec::sorted_rows, dims, values.size());
        const uint64_t stride = row_stride(dims);
        const size_t rows = values.size() / slots;
        for (size_t r = 0; r < rows; ++r) {
            const int32_t* row = values.data() + r * slots;
            if (r >= stride && std::memcmp(row, row - stride * slots, slots * sizeof(int32_t)) == 0) {
                out.push_back(0);
                continue;
            }
            uint32_t count = 0;
            while (count < slots && row[count] >= 0) ++count;
            put_varint(out, count + 1);
            for (uint32_t s = 0; s < count; ++s)
                put_varint(out, static_cast<uint32_t>(s == 0 ? row[0] : row[s] - row[s - 1] - 1));
        }
        return out;
    }
    bool fits_i16 = true;
    for (int32_t v : values) fits_i16 = fits_i16 && v >= std::numeric_limits<int16_t>::min() && v <= std::numeric_limits<int16_t>::max();
    if (!fits_i16) return encode_i32(values, dims);
    auto out = header(DType::i16, Codec::raw, dims, values.size());
    std::vector<int16_t> narrow(values.begin(), values.end());
    append_raw(out, narrow.data(), narrow.size());
    return out;
}

std::vector<float> decode_floats(const uint8_t* data, size_t size, std::vector<uint32_t>* dims,
                                 const std::vector<uint32_t>* expect) {
    const BlobInfo info = checked_info(data, size, nullptr, expect);
    // Check the kind before allocating: only a raw payload's size has been
    // held against the element count.
    if (info.codec != Codec::raw || (info.dtype != DType::f16 && info.dtype != DType::f32 && info.dtype != DType::f64))
        throw BlobError(std::string("expected a float array, found ") + dtype_name(info.dtype) +
                        (info.codec == Codec::raw ? "" : " rows"));
    if (dims) *dims = info.dims;
    const uint8_t* p = data + info.payload_offset;
    const size_t n = info.elements();
    std::vector<float> out(n);
    switch (info.dtype) {
        case DType::f16:
            for (size_t i = 0; i < n; ++i) out[i] = half_to_float(load<uint16_t>(p + 2 * i));
            break;
        case DType::f32:
            if (n) std::memcpy(out.data(), p, n * 4);
            break;
        case DType::f64:
            for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(p + 8 * i));
            break;
        default:
            throw BlobError(std::string("expected a float array, found ") + dtype_name(info.dtype));
    }
    return out;
}

std::vector<double> decode_doubles(const uint8_t* data, size_t size, std::vector<uint32_t>* dims,
                                   const std::vector<uint32_t>* expect) {
    const BlobInfo info = checked_info(data, size, nullptr, expect);
    if (info.dtype == DType::f64 && info.codec == Codec::raw) {
        if (dims) *dims = info.dims;
        std::vector<double> out(info.elements());
        if (!out.empty()) std::memcpy(out.data(), data + info.payload_offset, out.size() * 8);
        return out;
    }
    const std::vector<float> narrow = decode_floats(data, size, dims, expect);
    return std::vector<double>(narrow.begin(), narrow.end());
}

std::vector<int32_t> decode_ints(const uint8_t* data, size_t size, std::vector<uint32_t>* dims,
                                 const std::vector<uint32_t>* expect) {
    const BlobInfo info = checked_info(data, size, dims, expect);
    if (info.codec == Codec::sorted_rows) return decode_sorted_rows(info, data, size);
    const uint8_t* p = data + info.payload_offset;
    const size_t n = info.elements();
    std::vector<int32_t> out(n);
    switch (info.dtype) {
        case DType::u8:
            for (size_t i = 0; i < n; ++i) out[i] = p[i];
            break;
        case DType::i16:
            for (size_t i = 0; i < n; ++i) out[i] = load<int16_t>(p + 2 * i);
            break;
        case DType::i32:
            if (n) std::memcpy(out.data(), p, n * 4);
            break;
        default:
            throw BlobError(std::string("expected an integer array, found ") + dtype_name(info.dtype));
    }
    return out;
}

}  // namespace msa::sessions
