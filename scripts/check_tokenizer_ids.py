"""Compares mopt's token ids (scripts/tokenizer-ids.mjs output) with the Python `tokenizers` library
loading the same tokenizer.json: every text, with and without special tokens, must give identical ids.
    python3 scripts/check_tokenizer_ids.py TOKENIZER.json IDS.json
"""
import json
import sys

from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
ref = json.load(open(sys.argv[2]))
bad = 0
for key, special in (("ids", False), ("idsWithSpecial", True)):
    for text, ids in zip(ref["texts"], ref[key]):
        got = tok.encode(text, add_special_tokens=special).ids
        if got != ids:
            bad += 1
            if bad <= 5:
                print(f"MISMATCH ({key}) {text[:60]!r}: python {got[:20]} mopt {ids[:20]}")
        # decoding back must give the text (byte-level BPE is lossless)
        if not special and tok.decode(got) != text:
            print(f"DECODE differs for {text[:60]!r}: {tok.decode(got)[:60]!r}")
n = 2 * len(ref["texts"])
print(f"tokenizers {__import__('tokenizers').__version__}: {n - bad} of {n} encodings identical")
sys.exit(1 if bad else 0)
