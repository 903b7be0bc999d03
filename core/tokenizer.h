#pragma once
// Byte-level BPE (GPT-2 family) built from a Vocabulary, with the
// pre-tokenizer the model declares (vocab.pre).
#include <string>
#include <unordered_map>
#include <vector>

#include "core/vocabulary.h"

namespace msa {

class Tokenizer {
public:
    explicit Tokenizer(const Vocabulary& vocab);  // throws InputError on unsupported model/pre
    // Plain text is text: a control token written in it ("<|im_start|>") is
    // tokenized as characters. User-defined tokens (type 4) always match literally.
    std::vector<int> encode(const std::string& text, bool add_bos = false) const;
    // Also matches control tokens written literally, longest first: what a
    // chat-formatted prompt needs.
    std::vector<int> encode_with_special(const std::string& text, bool add_bos = false) const;
    std::string decode(const std::vector<int>& ids) const;
    std::string token_text(int id) const;  // the bytes one token stands for
    int size() const;
    int bos_id() const;
    int eos_id() const;
    // Implementation state lives in the .cpp.
    struct Impl;
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
private:
    Impl* impl_ = nullptr;
};

// The pre-tokenizer alone (pre = a Vocabulary::pre name): the pieces BPE
// runs on, in order; they concatenate back to text. Throws InputError on an
// unknown pre name.
std::vector<std::string> pre_tokenize(const std::string& text, const std::string& pre);

}  // namespace msa
