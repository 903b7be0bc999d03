#include "core/file_view.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace msa {

FileView::FileView(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw InputError(path + ": not a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
        void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapped == MAP_FAILED) {
            ::close(fd);
            throw InputError(path + ": cannot map file (" + std::strerror(errno) + ")");
        }
        data_ = static_cast<const uint8_t*>(mapped);
        // Loading walks the whole file once, front to back (hash) and by tensor (dequantize).
        ::madvise(mapped, size_, MADV_WILLNEED);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
}

FileView::~FileView() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

FileView::FileView(FileView&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
}

FileView& FileView::operator=(FileView&& other) noexcept {
    if (this != &other) {
        if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
        path_ = std::move(other.path_);
        data_ = other.data_;
        size_ = other.size_;
        other.data_ = nullptr;
        other.size_ = 0;
    }
    return *this;
}

void ByteReader::need(uint64_t bytes, const char* what) const {
    if (bytes > size_ - pos_) {
        throw InputError(label_ + ": file ends inside " + what + " (at byte " + std::to_string(pos_) + ", needs " +
                         std::to_string(bytes) + " more, " + std::to_string(size_ - pos_) + " left)");
    }
}

void ByteReader::seek(uint64_t offset, const char* what) {
    if (offset > size_) throw InputError(label_ + ": " + what + " offset " + std::to_string(offset) + " is past the end of the file");
    pos_ = offset;
}

std::string ByteReader::read_bytes(uint64_t length, const char* what) {
    need(length, what);
    std::string out(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += length;
    return out;
}

std::string read_text_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) throw InputError(path + ": not a regular file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw InputError(path + ": read error");
    return text.str();
}

}  // namespace msa
