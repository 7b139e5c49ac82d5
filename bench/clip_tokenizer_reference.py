#!/usr/bin/env python3
"""Writes tests/golden/clip_tokenizer_ids.json: the ids OpenAI's own tokenizer gives for a list of
texts (punctuation, numbers, accents, scripts, emoji, HTML entities, long and over-long input).

Needs OpenAI's clip/simple_tokenizer.py (github.com/openai/CLIP) and Python's `regex` package;
ftfy.fix_text is replaced by the identity (numeral does not implement it; these texts are already
clean, so it would leave them alone).
  python3 bench/clip_tokenizer_reference.py path/to/CLIP/clip
"""
import json
import sys
import types
from pathlib import Path

clip_dir = Path(sys.argv[1])
sys.modules["ftfy"] = types.SimpleNamespace(fix_text=lambda t: t)
sys.path.insert(0, str(clip_dir))
from simple_tokenizer import SimpleTokenizer  # noqa: E402

root = Path(__file__).resolve().parent.parent
tok = SimpleTokenizer(str(root / "tests/fixtures/clip/bpe_simple_vocab_16e6.txt.gz"))
texts = [
    "A handwritten number 7", "A clear, well-written digit 3", "A blurry or unclear number",
    "a diagram", "a photo of a cat", "A photo of a cat.", "Hello, World!!!",
    "it's 2024 — they're here", "I'll've we'd you're she's",
    "Café crème brûlée à la façon de Zoë", "ΑΒΓ δέλτα Ωμέγα", "Привет, мир", "naïve coöperation",
    "emoji 🙂👍🏽 and ✨", "$3.50 + 20% = ???",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "tabs\tand\nnewlines   and   spaces", "&amp; &lt;tag&gt; &quot;quoted&quot; &#39;x&#39;",
    "MiXeD CaSe WoRdS", "e-mail: someone@example.com, url https://example.org/a_b?c=d",
    "数字 七", "0123456789", "(((nested))) [brackets] {braces}", "...", "a" * 100,
    "the quick brown fox jumps over the lazy dog " * 12,
]
cases = [{"text": t, "ids": tok.encode(t)} for t in texts]
source = ("OpenAI CLIP clip/simple_tokenizer.py (github.com/openai/CLIP d05afc4) with "
          "ftfy.fix_text as the identity, on bpe_simple_vocab_16e6.txt.gz")
out = root / "tests/golden/clip_tokenizer_ids.json"
out.write_text(json.dumps({"source": source, "cases": cases}, ensure_ascii=False, indent=1) + "\n")
print(f"wrote {out}: {len(cases)} texts")
