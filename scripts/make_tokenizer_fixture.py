#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer_smollm2.json: strings and the token ids an
independent tokenizer gives them with SmolLM2-135M-Instruct's vocabulary.

Reference: llama.cpp's tokenizer through llama-cpp-python (the model opened
with vocab_only=True, so no weights are read). Plain cases are tokenized with
special=False (control tokens written in the text stay text); the chat cases
with special=True (they become control ids). add_bos is False for both, which
is also this model's own setting.

The fixture also records, for each pre-tokenizer msascope implements, how
Python's `regex` module (which knows \\p{L} and \\p{N}) splits a few strings
with the model family's published pattern: an independent check of the
hand-written scanners for the families that have no model here.

Usage: python3 scripts/make_tokenizer_fixture.py [model.gguf] [output.json]
"""
import json
import os
import sys
from pathlib import Path

import llama_cpp
import regex

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "msascope" / "SmolLM2-135M-Instruct.Q4_1.gguf"

CASES = [
    ("english", "The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the clocks were striking thirteen."),
    ("leading_space_hello", " hello"),
    ("hello", "hello"),
    ("contractions", "I'm sure you'll see they've done what we'd said; isn't it? She's here. They're late. I'VE SEEN IT, DON'T."),
    ("numbers", "12345 and 3.14159, 1,000,000 or 2024-05-17 at 09:30; x = -42e-3; 007"),
    ("code", "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])  # 0..9\n"),
    ("cpp_code", "int main(int argc, char** argv) {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 2 ? 0 : -1;\n}\n"),
    ("accented_latin", "Café déjà vu, naïve façade, Ångström, Straße, Đặng Thị, señor, Œuvre."),
    ("greek", "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο."),
    ("cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю."),
    ("cjk", "我能吞下玻璃而不伤身体。日本語のテキスト、カタカナ。한국어 문장입니다."),
    ("emoji", "Hello 👋 world 🌍! Family: 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, thumbs 👍🏽 ✨"),
    ("combining_marks", "e\u0301 a\u0300 n\u0303 Z\u0351\u0352\u0353a\u0336l\u0337g\u0338o and \u0915\u093f\u0924\u093e\u092c"),
    ("whitespace", "tabs\there\t\tand  two spaces,   three,\n\nnewlines\r\nCRLF \n trailing   "),
    ("only_spaces", "     "),
    ("newline_only", "\n"),
    ("mixed_digits_letters", "abc123def 4five6 ٣٤٥ (Arabic-Indic) ²³ ½ Ⅻ"),
    ("punctuation", "Wait... what?!? (yes) [no] {maybe} <tag/> \"quoted\" 'single' -- em—dash … ¿¡"),
    ("urls", "See https://example.com/path?q=1&r=two#frag or mail me@example.org."),
    ("chat_markup_as_text", "<|im_start|>user\nHi there<|im_end|>\n"),
    ("long_word", "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ==================== ------"),
    ("nbsp_and_unicode_spaces", "non\u00a0breaking\u2003em\u3000ideographic\u2028line"),
    # Letters new in Unicode 15.0/15.1 (Egyptian hieroglyph, CJK Extension I):
    # a letter ends before "'re", anything else swallows the apostrophe.
    ("unicode_15_letters", "\U0001342F're \U0002EBF0'll \U0002EE5D's"),
    ("control_chars", "bell\x07 escape\x1b[0m null\x00 del\x7f"),
]

CHAT_CASES = [
    ("chat", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
    ("chat_adjacent", "<|im_start|><|im_end|><|endoftext|>text<file_sep>"),
]

# The published patterns, for Python's regex module.
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

PRE_STRINGS = [
    "Hello world, it's 12345 o'clock!",
    "I'VE Seen THE'LL case-insensitive 'S 'Re",
    "  leading and trailing  \n\n\tindented\r\n  line  ",
    "x=1234567+89;\n\n\n  y = 'abc'\r\n\r\nz",
    "日本語 テキスト 123 ٣٤٥ é\u0301 👋🏽 ...!!\n",
    "a \n b\t\n\tc   \n",
]


def split_with(pattern, text):
    return [m.group(0) for m in regex.finditer(pattern, text)]


def smollm_split(text):
    pieces = []
    for segment in regex.split(r"(\p{N})", text):
        if not segment:
            continue
        if regex.fullmatch(r"\p{N}", segment):
            pieces.append(segment)
        else:
            pieces.extend(split_with(GPT2, segment))
    return pieces


def main():
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests" / "fixtures" / "tokenizer_smollm2.json"
    llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)

    def tokenize(text, special):
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    fixture = {
        "reference": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}: "
                     "Llama(vocab_only=True).tokenize(text, add_bos=False, special=False|True)",
        "pre_tokenizer_reference": f"Python regex {regex.__version__} with the published patterns",
        "model": model.name,
        "model_bytes": model.stat().st_size,
        "cases": [{"name": n, "text": t, "ids": tokenize(t, False)} for n, t in CASES],
        "special_cases": [{"name": n, "text": t, "ids": tokenize(t, True)} for n, t in CHAT_CASES],
        "pre_tokenizer_cases": [
            {"pre": pre, "text": t, "pieces": split(t)}
            for pre, split in [
                ("gpt2", lambda t: split_with(GPT2, t)),
                ("smollm", smollm_split),
                ("llama-bpe", lambda t: split_with(LLAMA3, t)),
                ("qwen2", lambda t: split_with(QWEN2, t)),
            ]
            for t in PRE_STRINGS
        ],
    }
    for case in fixture["cases"] + fixture["special_cases"]:
        # Guard the reference itself: it must reproduce the text it was given.
        back = b"".join(llm.detokenize([i], special=True) for i in case["ids"]).decode("utf-8")
        if back != case["text"]:
            raise SystemExit(f"reference does not round-trip case {case['name']!r}: {back!r}")
    text = json.dumps(fixture, ensure_ascii=False, indent=1)
    # One line per id list and piece list keeps the file short and diffs readable.
    text = regex.sub(r"\[\n\s*([^\[\]{}]*?)\n\s*\]", lambda m: "[" + regex.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
    out.write_text(text + "\n")
    print(f"wrote {out}: {len(fixture['cases'])} cases, {len(fixture['special_cases'])} special, "
          f"{len(fixture['pre_tokenizer_cases'])} pre-tokenizer cases")


if __name__ == "__main__":
    main()
