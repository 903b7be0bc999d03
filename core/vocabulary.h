#pragma once
// The tokenizer's data as a model file declares it, whatever the file format
// (GGUF metadata or a Hugging Face tokenizer.json). core/tokenizer builds the
// byte-level BPE encoder from this.
#include <string>
#include <utility>
#include <vector>

namespace msa {

struct Vocabulary {
    std::string model = "gpt2";        // tokenizer family; only byte-level BPE ("gpt2") is supported
    std::string pre = "default";       // pre-tokenizer name (GGUF tokenizer.ggml.pre, e.g. "smollm", "llama-bpe", "qwen2")
    std::vector<std::string> tokens;   // id -> token text (byte-level encoded, 'Ġ' for space)
    std::vector<int> token_type;       // id -> 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte (GGUF convention); may be empty
    std::vector<std::pair<std::string, std::string>> merges;  // rank order
    int bos_id = -1;
    int eos_id = -1;
    int unk_id = -1;
    bool add_bos = false;
};

}  // namespace msa
