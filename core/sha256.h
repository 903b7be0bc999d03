#pragma once
// SHA-256 (FIPS 180-4), used for the model identity stored with every run.
#include <cstddef>
#include <cstdint>
#include <string>

namespace msa {

class Sha256 {
public:
    // allow_hardware = false forces the portable rounds (tests compare both paths).
    explicit Sha256(bool allow_hardware = true);
    void update(const void* data, size_t length);
    // Finishes the digest and returns it as 64 lowercase hex characters.
    // The object must not be updated afterwards.
    std::string hex_digest();

private:
    void compress(const uint8_t* blocks, size_t count);
    uint32_t state_[8];
    uint8_t buffer_[64];
    size_t buffered_ = 0;
    uint64_t total_bytes_ = 0;
    bool allow_hardware_ = true;
};

std::string sha256_hex(const void* data, size_t length);

}  // namespace msa
