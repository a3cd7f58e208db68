"""Seeded, varied strings for tokenizer equality tests (unicode, emoji, HTML, long, empty)."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

WORDS = (
    "a photo of the dog cat beach sunset mountain red blue car street night city snow "
    "running children birthday cake wedding dress forest river boat bridge old man woman "
    "don't it's we're they've I'm you'll he'd THE Quick BROWN fox jumps over lazy dogs "
    "café naïve résumé coöperate façade jalapeño Straße Ærøskøbing İstanbul ǅemal ﬁsh ﬂower"
).split()
SCRIPTS = (
    "日本語のテキスト 東京タワー 中文字符串 北京 한국어 텍스트 서울",
    "Привет мир фото кошки Ёлка",
    "مرحبا بالعالم صورة قطة",
    "नमस्ते दुनिया बिल्ली की तस्वीर",
    "สวัสดีชาวโลก แมว",
    "Γειά σου κόσμε γάτα Σίσυφος ΣΊΣΥΦΟΣ",
    "שלום עולם חתול",
    "Ẓ̌ålgö̲ ṭ̈ȩ̸x̣t e\u0301 a\u0308 n\u0303",
    "ＡＢＣ　ｆｕｌｌ　ｗｉｄｔｈ　１２３",
    "½ ² ③ Ⅻ ٣ ๓ 𝟙𝟚 ¹²³",
)
EMOJI = (
    "😀",
    "🐶",
    "🏖️",
    "👨‍👩‍👧‍👦",
    "👍🏽",
    "🇯🇵",
    "🇺🇸",
    "❤️",
    "✨",
    "🎂🎉",
    "🧑🏿‍🚀",
    "☕",
    "#️⃣",
    "🏳️‍🌈",
)
HTML_BITS = (
    "&amp;",
    "&lt;b&gt;",
    "&amp;amp;",
    "&amp;amp;amp;lt;",
    "&#39;",
    "&#x27;",
    "&quot;",
    "&nbsp;",
    "&eacute;",
    "&hellip;",
    "<b>bold</b>",
    "<a href='x'>link</a>",
    "&copy; 2024",
    "&#128512;",
    "&notanentity;",
    "&",
    "&&",
    "AT&T",
    "<br/>",
    "Tom &amp; Jerry",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#0;",
    "&#xD800;",
    "&#1114112;",
)
ODD = (
    "",
    " ",
    "   ",
    "\t\n\r",
    "\u00a0",
    "\u2028",
    "\u3000",
    "\x1c\x1d\x1e\x1f",
    "\x00",
    "\x07bell",
    "\x1b[31mred\x1b[0m",
    "\x7f",
    "\x85",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\ufffd",
    "\u202e rtl",
    "<start_of_text>",
    "<end_of_text>",
    "<<start_of_text>>",
    "a<end_of_text>b",
    "<START_OF_TEXT>",
    "<ſtart_of_text>",
    "'S",
    "'ſ",
    "IT'S",
    "don'T",
    "\u212a",
    "ſ",
    "İ",
    "ß",
    "ﬀ",
    "ǈ",
    "ʼn",
    "Σ",
    "ΐ",
    "mojibake: cafÃ©",
    "â€œquotedâ€\x9d",
    "Ã¼ber",
    "“curly” ‘quotes’",
    "—dash–",
    "…",
    "１２３",
    "x²",
    "\ud83d",
    "\udc00x",
    "C:\\path\\file.jpg",
    "http://example.com/a?b=c&d=e",
    "e-mail@example.org",
    "#hashtag",
    "@user",
    "$100.00",
    "50%",
    "3.14159",
    "2024-01-01",
    "12:30",
    "++--**//",
    "a\u0301\u0302\u0303\u0304\u0305",
    "\U0001f600" * 20,
    "ha" * 200,
    "word " * 300,
    "🐶" * 100,
    "x" * 5000,
)
POOLS = (WORDS, SCRIPTS, EMOJI, HTML_BITS, ODD)
SEPARATORS = (" ", " ", " ", "  ", "\t", "\n", "", ",", ". ", "\u00a0", "-", "_", "/")


def _random_char(rng: random.Random) -> str:
    # Code points that Python's Unicode tables assign: open_clip's ``regex`` and the Rust
    # regex engine of ``tokenizers`` follow different Unicode versions, so a letter assigned
    # after the older of the two splits differently (and changes with the regex version).
    while True:
        char = chr(
            rng.choice(
                (
                    rng.randint(0, 0x7F),
                    rng.randint(0x80, 0x2FFF),
                    rng.randint(0x3000, 0xFFFF),
                    rng.randint(0x10000, 0x1FFFF),
                )
            )
        )
        if unicodedata.category(char) != "Cn":
            return char


def varied_strings(count: int = 10_000, seed: int = 0) -> list[str]:
    """``count`` strings: every fixed odd case, then random mixes of words, scripts, emoji and HTML."""
    rng = random.Random(seed)
    out = list(ODD) + list(HTML_BITS) + list(SCRIPTS) + list(EMOJI)
    while len(out) < count:
        kind = rng.random()
        if kind < 0.005:  # very long: many random pieces (a few: ftfy takes a while on them)
            parts = [rng.choice(rng.choice(POOLS)) for _ in range(rng.randint(100, 300))]
        elif kind < 0.04:  # random code points, any plane
            parts = ["".join(_random_char(rng) for _ in range(rng.randint(1, 30)))]
        else:
            weights = (6, 2, 1, 1, 1)
            parts = [rng.choice(rng.choices(POOLS, weights)[0]) for _ in range(rng.randint(1, 12))]
        text = ""
        for part in parts:
            text += part + rng.choice(SEPARATORS)
        if rng.random() < 0.3:
            text = text.upper() if rng.random() < 0.5 else text.title()
        out.append(text)
    return out[:count] if len(out) >= count else out


def ascii_strings(count: int = 2000, seed: int = 0) -> list[str]:
    """Printable ASCII captions without "&" (the texts other readers of a tokenizer.json can clean alike)."""
    rng = random.Random(seed)
    words = [w for w in WORDS if w.isascii()] + ["42", "3.5", "x2", "!!", "?", "...", "(a)", "'s", "-", "#1", "@me"]
    out = []
    for _ in range(count):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        out.append(text.upper() if rng.random() < 0.2 else text)
    return out


def tiny_hf_tokenizer(folder: Path, kind: str) -> Path:
    """A Hugging Face fast tokenizer trained offline: SigLIP-like (T5 sentencepiece, eos) or XLM-R-like."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    folder.mkdir(parents=True)
    texts = (
        [" ".join(WORDS)] * 5
        + list(SCRIPTS) * 5
        + [t.encode("utf-8", "replace").decode() for t in varied_strings(300, 5)]
    )
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    if kind == "siglip":
        tokenizer.normalizer = normalizers.NFKC()
        specials = ["<pad>", "</s>", "<unk>"]
        tokenizer.train_from_iterator(
            texts, trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>")
        )
        tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        settings = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    else:
        tokenizer.normalizer = normalizers.NFKC()
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        tokenizer.train_from_iterator(
            texts, trainers.UnigramTrainer(vocab_size=500, special_tokens=specials, unk_token="<unk>")
        )
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
        )
        settings = {
            "pad_token": "<pad>",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
        }
    tokenizer.save(str(folder / "tokenizer.json"))
    settings |= {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder
