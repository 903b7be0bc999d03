#pragma once
// A read-only memory map of one file, and a cursor that reads little-endian
// values from it with every access bounds-checked. Model files are untrusted
// input: a truncated download or a hostile header must end in an InputError
// naming the file, never in a read past the mapping.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace msa {

class FileView {
public:
    FileView() = default;
    // Throws InputError when the file cannot be opened, is a directory, or cannot be mapped.
    explicit FileView(const std::string& path);
    ~FileView();
    FileView(FileView&& other) noexcept;
    FileView& operator=(FileView&& other) noexcept;
    FileView(const FileView&) = delete;
    FileView& operator=(const FileView&) = delete;

    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // True when [offset, offset + length) lies inside the file (overflow-safe).
    bool contains(uint64_t offset, uint64_t length) const {
        return offset <= size_ && length <= size_ - offset;
    }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
};

// Sequential little-endian reader over [data, data + size). Every read checks
// the remaining length first and throws InputError("<file>: <what> ...") when
// the file ends early, so callers can parse headers without their own checks.
class ByteReader {
public:
    ByteReader(const uint8_t* data, uint64_t size, std::string file_label)
        : data_(data), size_(size), label_(std::move(file_label)) {}

    uint64_t position() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }
    const std::string& label() const { return label_; }

    void need(uint64_t bytes, const char* what) const;
    void skip(uint64_t bytes, const char* what) { need(bytes, what); pos_ += bytes; }
    void seek(uint64_t offset, const char* what);
    const uint8_t* here() const { return data_ + pos_; }

    template <class T>
    T read(const char* what) {
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, data_ + pos_, sizeof(T));  // files are little-endian, as is every host we build for
        pos_ += sizeof(T);
        return value;
    }
    std::string read_bytes(uint64_t length, const char* what);

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    std::string label_;
};

// Reads a whole (small) text file such as config.json; throws InputError when unreadable.
std::string read_text_file(const std::string& path);

}  // namespace msa
