#pragma once
// Typed array BLOBs for the session file.
//
// Layout (little endian):
//   0  'M' 'S' 'A' 'B'       magic
//   4  u8  format version    (1)
//   5  u8  dtype             (DType: the element type the array decodes to)
//   6  u8  codec             (Codec: how the payload stores it)
//   7  u8  ndim              (1..4)
//   8  u32 dims[ndim]
//   .. payload
// raw:         payload = prod(dims) elements of dtype, exactly.
// sorted_rows: dtype i32, dims [rows..., slots]; each row is a run of strictly
//              ascending non-negative ids followed by -1 padding (a Selection
//              row). Per row one varint v: v == 0 repeats the previous row,
//              else v - 1 ids follow as varints (first id, then gap - 1).
//              Block ids are small and ascending, so a 16-slot row takes ~17
//              bytes instead of 64 (int32) or 32 (int16), and queries of one
//              block that pick the same blocks take one byte.
// Decoders check the header against the BLOB size before touching the payload
// and throw BlobError (the caller adds file/run/layer context).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace msa::sessions {

enum class DType : uint8_t { u8 = 1, i16 = 2, i32 = 3, f16 = 4, f32 = 5, f64 = 6 };
enum class Codec : uint8_t { raw = 0, sorted_rows = 1 };

struct BlobError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct BlobInfo {
    DType dtype = DType::u8;
    Codec codec = Codec::raw;
    std::vector<uint32_t> dims;
    size_t payload_offset = 0;
    uint64_t elements() const;
};

// Parses and validates the header (magic, version, dtype, codec, dims and,
// for raw payloads, the exact payload size).
BlobInfo read_blob_info(const uint8_t* data, size_t size);

// IEEE 754 binary16 <-> binary32, round to nearest even; inf and NaN survive
// (block scores use -inf for blocks a query cannot see).
uint16_t float_to_half(float value);
float half_to_float(uint16_t half);

std::vector<uint8_t> encode_f32(const std::vector<float>& values, const std::vector<uint32_t>& dims);
std::vector<uint8_t> encode_f16(const std::vector<float>& values, const std::vector<uint32_t>& dims);
// float16 when every value is finite and inside float16's range (relative
// error <= 2^-11 then), else float32 exactly: for large activations (Q/K/V)
// that only feed views, at half the bytes unless a value would overflow.
std::vector<uint8_t> encode_f16_or_f32(const std::vector<float>& values, const std::vector<uint32_t>& dims);
std::vector<uint8_t> encode_f64(const std::vector<double>& values, const std::vector<uint32_t>& dims);
std::vector<uint8_t> encode_i32(const std::vector<int32_t>& values, const std::vector<uint32_t>& dims);

// Smallest faithful encoding of a Selection-shaped array: sorted_rows when
// every row is ascending ids then -1 padding, else raw i16 when every value
// fits, else raw i32. The last dim is the row width (slots).
std::vector<uint8_t> encode_ids(const std::vector<int32_t>& values, const std::vector<uint32_t>& dims);

// Decoders accept any float dtype (f16/f32/f64) or any integer dtype
// (u8/i16/i32, either codec); `dims`, when given, receives the shape. With
// `expect`, a header of another shape is refused before anything is
// allocated: readers pass the shape their row says the array has, so a
// damaged header cannot make them allocate what it claims. Without it,
// sorted-rows arrays are capped at kMaxSlots slots and kMaxDecodedElements.
constexpr uint32_t kMaxSlots = 65536;
constexpr uint64_t kMaxDecodedElements = uint64_t(1) << 31;
std::vector<float> decode_floats(const uint8_t* data, size_t size, std::vector<uint32_t>* dims = nullptr,
                                 const std::vector<uint32_t>* expect = nullptr);
std::vector<double> decode_doubles(const uint8_t* data, size_t size, std::vector<uint32_t>* dims = nullptr,
                                   const std::vector<uint32_t>* expect = nullptr);
std::vector<int32_t> decode_ints(const uint8_t* data, size_t size, std::vector<uint32_t>* dims = nullptr,
                                 const std::vector<uint32_t>* expect = nullptr);

}  // namespace msa::sessions
