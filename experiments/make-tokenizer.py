"""Writes a small word-level tokenizer (tokenizer.json + tokenizer_config.json)
into DIR, for inference-perf to load with AutoTokenizer.from_pretrained(DIR):
no model hub involved. Usage: make-tokenizer.py DIR (run with the experiment
venv's Python, which has `tokenizers`). The vocabulary is fixed (the same words
every time), so prompts generated from a seed are the same on every machine.
The simulator does not tokenize with it: it only shapes prompt lengths."""
import json
import os
import sys

from tokenizers import Tokenizer, models, pre_tokenizers, decoders

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fe", "gu", "hi", "ja", "ko"]


def vocabulary():
    """[UNK], then 4096 pronounceable two- and three-syllable words, in a fixed order."""
    words = ["[UNK]"]
    for a in SYLLABLES:
        for b in SYLLABLES:
            words.append(a + b)
    for a in SYLLABLES:
        for b in SYLLABLES:
            for c in SYLLABLES:
                if len(words) < 4097:
                    words.append(a + b + c)
    return {w: i for i, w in enumerate(words)}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tok = Tokenizer(models.WordLevel(vocab=vocabulary(), unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
                   "model_max_length": 1048576}, f)
    print(out)


if __name__ == "__main__":
    main()
