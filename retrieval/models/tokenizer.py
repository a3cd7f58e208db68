"""Torch-free text tokenizers with open_clip's exact token ids, run by the ``tokenizers`` library.

Two families, both loaded from a ``tokenizer.json``:

- ``clip-bpe``: open_clip's ``SimpleTokenizer`` (CLIP's byte-level BPE). Its cleaning (ftfy,
  HTML unescaping twice, whitespace collapsing, lowercasing) cannot be written as ``tokenizers``
  normalizers, so it runs here in Python, exactly as open_clip runs it; the file's own
  normalizer (kept for other readers of the file) is switched off.
- ``hf``: open_clip's ``HFTokenizer`` over a Hugging Face tokenizer (SigLIP, XLM-R, NLLB,
  mT5): the same cleaning, then the file's pipeline with truncation and padding to the
  context length.

ftfy is imported only for texts that need it: printable ASCII without ``&`` is returned
unchanged by ftfy and by ``html.unescape``, so typed queries skip its import (~0.1 s).
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

CLIP_BPE = "clip-bpe"
HF = "hf"
FAMILIES = (CLIP_BPE, HF)
CLEAN_MODES = ("lower", "whitespace", "canonicalize")
SOT = "<start_of_text>"
EOT = "<end_of_text>"
# open_clip's word pattern (compiled there with IGNORECASE), with its two special tokens first.
CLIP_PATTERN = r"(?i:<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d)|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
# Texts that ftfy.fix_text and html.unescape return unchanged: printable ASCII, tab, CR, LF, no "&".
_NEEDS_FTFY = re.compile(r"[^\x20-\x25\x27-\x7e\t\n\r]")
_SPECIAL = re.compile(r"<start_of_text>|<end_of_text>", re.IGNORECASE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class TokenizerConfig:
    """How a model turns text into token ids (written next to the tokenizer.json at export)."""

    family: str = CLIP_BPE  # "clip-bpe" (open_clip SimpleTokenizer) or "hf" (open_clip HFTokenizer)
    context_length: int = 77  # ids per text, special tokens included; longer texts are truncated
    clean: str = "lower"  # open_clip's cleaning: "lower", "whitespace" or "canonicalize"
    pad_id: int = 0  # id after the last token (open_clip pads CLIP BPE with 0)
    padding_side: str = "right"  # hf: where padding goes ("right" or "left")
    truncation_side: str = "right"  # hf: which end truncation cuts
    strip_sep_id: int = -1  # hf: this id becomes 0 (open_clip's strip_sep_token); -1: none

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> TokenizerConfig:
        """Build from a dict written by :meth:`to_dict` (unknown keys are ignored)."""
        fields = cls.__dataclass_fields__
        config = cls(**{key: value for key, value in raw.items() if key in fields})  # type: ignore[arg-type]
        if config.family not in FAMILIES or config.clean not in CLEAN_MODES or config.context_length < 2:
            raise ValueError(f"unsupported tokenizer config {raw!r}")
        return config


def clean_text(text: str, mode: str = "lower") -> str:
    """open_clip's text cleaning: ftfy, HTML unescaped twice, stripped, then ``mode``.

    ``lower`` and ``whitespace`` collapse runs of whitespace (``lower`` also lowercases);
    ``canonicalize`` drops ASCII punctuation, lowercases and collapses whitespace.
    """
    if _NEEDS_FTFY.search(text):
        import ftfy  # lazy: ~0.1 s, needed only for non-ASCII text, controls or "&"

        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    text = text.strip()
    if mode == "canonicalize":
        return " ".join(text.replace("_", " ").translate(_PUNCTUATION).lower().split())
    text = " ".join(text.split())
    return text.lower() if mode == "lower" else text


class TextTokenizer:
    """Texts -> ``(N, context_length)`` int64 token ids, equal to open_clip's tokenizer's."""

    def __init__(self, tokenizer: Tokenizer, config: TokenizerConfig) -> None:
        self.config = config
        self._tokenizer = tokenizer
        if config.family == CLIP_BPE:
            # Our cleaning already did what the file's normalizer does (and more); special
            # tokens are added here, so truncation keeps room for them.
            tokenizer.normalizer = None
            tokenizer.post_processor = None
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self.sot_id = _token_id(tokenizer, SOT)
            self.eot_id = _token_id(tokenizer, EOT)
        else:
            tokenizer.enable_truncation(config.context_length, direction=config.truncation_side)
            tokenizer.enable_padding(
                direction=config.padding_side,
                pad_id=config.pad_id,
                pad_token=_pad_token(tokenizer, config.pad_id),
                length=config.context_length,
            )

    @classmethod
    def from_file(cls, path: Path, config: TokenizerConfig) -> TextTokenizer:
        """Load a ``tokenizer.json`` written by ``tokenizers`` (or transformers' ``save_pretrained``).

        A CLIP BPE file written by others (Hugging Face's, which Immich's exports carry,
        names the special tokens ``<|startoftext|>``) is rebuilt from its merges into
        open_clip's form, after checking that its vocabulary is CLIP's.

        Raises:
            ValueError: the file is unreadable, or not CLIP's BPE where ``config`` says so.
        """
        from tokenizers import Tokenizer

        try:
            # from_file, not from_str: it parses with the GIL released (and sooner), so a search
            # loads the tokenizer while its text session opens (OnnxEncoder.encode_texts).
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed or missing file
            raise ValueError(f"{path} is not a tokenizer.json the tokenizers library reads ({exc})") from exc
        if config.family == CLIP_BPE and tokenizer.token_to_id(SOT) is None:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            tokenizer = Tokenizer.from_str(clip_bpe_from_foreign(raw, config.context_length))
        return cls(tokenizer, config)

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids ``(N, context_length)`` int64 of ``texts``, padded and truncated like open_clip."""
        cleaned = [clean_text(text, self.config.clean) for text in texts]
        if self.config.family == CLIP_BPE:
            # Every space-separated chunk of cleaned text yields at least one token, so the
            # first context_length chunks decide every id that survives truncation.
            keep = self.config.context_length
            return self._clip_ids([" ".join(text.split(" ", keep)[:keep]) for text in cleaned])
        ids = np.array([encoding.ids for encoding in self._tokenizer.encode_batch(cleaned)], dtype=np.int64)
        ids = ids.reshape(len(cleaned), self.config.context_length)
        if self.config.strip_sep_id >= 0:
            ids[ids == self.config.strip_sep_id] = 0
        return ids

    def _clip_ids(self, cleaned: list[str]) -> np.ndarray:
        size = self.config.context_length
        result = np.full((len(cleaned), size), self.config.pad_id, dtype=np.int64)
        plain = [i for i, text in enumerate(cleaned) if not _SPECIAL.search(text)]
        encoded = dict(zip(plain, self._tokenizer.encode_batch([cleaned[i] for i in plain], add_special_tokens=False)))
        for row, text in enumerate(cleaned):
            body = encoded[row].ids if row in encoded else self._clip_ids_with_specials(text)
            tokens = [self.sot_id, *body[: size - 2], self.eot_id]
            result[row, : len(tokens)] = tokens
        return result

    def _clip_ids_with_specials(self, text: str) -> list[int]:
        # Rare: the text spells a special token. open_clip's regex matches it as one word
        # only where a word may start, so split with the same regex, then map word by word.
        from tokenizers import Regex
        from tokenizers.pre_tokenizers import Split

        words = Split(Regex(CLIP_PATTERN), behavior="removed", invert=True).pre_tokenize_str(text)
        ids: list[int] = []
        for word, _ in words:
            if word in (SOT, EOT):  # only the exact spelling maps to the special id
                ids.append(self.sot_id if word == SOT else self.eot_id)
            else:
                ids.extend(self._tokenizer.encode(word, add_special_tokens=False).ids)
        return ids


def _token_id(tokenizer: Tokenizer, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise ValueError(f"the tokenizer has no {token} token")
    return int(found)


def _pad_token(tokenizer: Tokenizer, pad_id: int) -> str:
    return tokenizer.id_to_token(pad_id) or "<pad>"


def clip_bpe_tokenizer_json(merges: Sequence[tuple[str, str]], context_length: int = 77) -> str:
    """A ``tokenizer.json`` for CLIP's BPE from its merge list (open_clip's bpe_simple_vocab).

    The vocabulary is built as open_clip builds it: the 256 byte symbols, the same with
    ``</w>``, one entry per merge, then the two special tokens. The file also carries a
    normalizer, post-processor, truncation and padding, so other readers (Immich, plain
    ``tokenizers``) get open_clip's ids for ASCII text without xmr's cleaning.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    symbols = list(byte_symbols().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges] + [SOT, EOT]
    ids = {token: index for index, token in enumerate(vocab)}
    if len(ids) != len(vocab):
        raise ValueError("the BPE merge list repeats a token")
    tokenizer = Tokenizer(models.BPE(vocab=ids, merges=list(merges), end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([SOT, EOT])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, ids[SOT]), (EOT, ids[EOT])]
    )
    tokenizer.enable_truncation(context_length)
    tokenizer.enable_padding(pad_id=0, pad_token=vocab[0], length=context_length)
    return tokenizer.to_str()


def clip_bpe_from_foreign(raw: dict, context_length: int = 77) -> str:
    """open_clip's CLIP tokenizer.json rebuilt from another CLIP BPE file's merges (see
    :meth:`TextTokenizer.from_file`); its vocabulary must give every token the same id.

    Raises:
        ValueError: the file's model is not CLIP's byte-level BPE.
    """
    model = raw.get("model") or {}
    if model.get("type") != "BPE" or model.get("end_of_word_suffix") != "</w>":
        raise ValueError("the tokenizer.json is not CLIP's byte-level BPE (type BPE, end-of-word suffix </w>)")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    rebuilt = json.loads(clip_bpe_tokenizer_json(merges, context_length))  # type: ignore[arg-type]
    theirs = {
        token: index for token, index in model.get("vocab", {}).items() if index < len(rebuilt["model"]["vocab"]) - 2
    }
    ours = {token: index for token, index in rebuilt["model"]["vocab"].items() if token not in (SOT, EOT)}
    if theirs != ours:
        raise ValueError("the tokenizer.json's vocabulary is not CLIP's: its ids differ from open_clip's")
    return json.dumps(rebuilt)


def byte_symbols() -> dict[int, str]:
    """GPT-2's reversible byte -> printable symbol table, which CLIP's BPE vocabulary is written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table  # insertion order (printable bytes first) is the vocabulary's order


def read_bpe_merges(path: Path) -> list[tuple[str, str]]:
    """The merges of open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (the slice open_clip uses)."""
    import gzip

    lines = gzip.open(path).read().decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]  # type: ignore[misc]


def tokenizer_config_json(config: TokenizerConfig) -> str:
    """The xmr tokenizer settings as JSON text."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
