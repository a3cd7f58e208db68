"""The torch-free tokenizers give open_clip's token ids (oracle: open_clip's own tokenizers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.models.tokenizer import (
    CLIP_BPE,
    HF,
    TextTokenizer,
    TokenizerConfig,
    clean_text,
    clip_bpe_tokenizer_json,
    read_bpe_merges,
)
from tests.helpers.paths import REPO
from tests.helpers.text_corpus import ascii_strings, tiny_hf_tokenizer, varied_strings

COUNT = 10_000


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return varied_strings(COUNT)


@pytest.fixture(scope="module")
def clip_json() -> str:
    from open_clip.tokenizer import default_bpe

    return clip_bpe_tokenizer_json(read_bpe_merges(Path(default_bpe())))


def _mismatches(ours: np.ndarray, theirs: np.ndarray, texts: list[str]) -> list[str]:
    return [repr(texts[i][:60]) for i in np.where((ours != theirs).any(axis=1))[0][:5]]


@pytest.mark.parametrize("context", [77, 16])
def test_clip_bpe_ids_equal_open_clip_on_10k_varied_strings(corpus: list[str], clip_json: str, context: int) -> None:
    from open_clip.tokenizer import SimpleTokenizer
    from tokenizers import Tokenizer

    ours = TextTokenizer(Tokenizer.from_str(clip_json), TokenizerConfig(CLIP_BPE, context))(corpus)
    theirs = SimpleTokenizer(context_length=context)(corpus).numpy()
    assert ours.shape == theirs.shape == (COUNT, context)
    assert not _mismatches(ours, theirs, corpus)


@pytest.mark.parametrize("mode", ["lower", "whitespace", "canonicalize"])
def test_cleaning_equals_open_clip(corpus: list[str], mode: str) -> None:
    from open_clip.tokenizer import get_clean_fn

    theirs = get_clean_fn(mode)
    assert [i for i, text in enumerate(corpus) if clean_text(text, mode) != theirs(text)] == []


@pytest.mark.parametrize(
    ("kind", "clean", "context", "strip_sep"),
    [("siglip", "canonicalize", 64, False), ("xlmr", "whitespace", 32, False), ("xlmr", "whitespace", 16, True)],
)
def test_hf_family_ids_equal_open_clip_on_10k_varied_strings(
    corpus: list[str], tmp_path: Path, kind: str, clean: str, context: int, strip_sep: bool
) -> None:
    from open_clip.tokenizer import HFTokenizer

    folder = tiny_hf_tokenizer(tmp_path / kind, kind)
    reference = HFTokenizer(str(folder), context_length=context, clean=clean, strip_sep_token=strip_sep)
    hf = reference.tokenizer
    config = TokenizerConfig(
        HF,
        context,
        clean,
        pad_id=hf.pad_token_id,
        padding_side=hf.padding_side,
        truncation_side=hf.truncation_side,
        strip_sep_id=hf.sep_token_id if strip_sep else -1,
    )
    ours = TextTokenizer.from_file(folder / "tokenizer.json", config)(corpus)
    theirs = reference(corpus).numpy()
    assert ours.shape == theirs.shape == (COUNT, context)
    assert not _mismatches(ours, theirs, corpus)


def test_a_hugging_face_clip_tokenizer_json_is_read_with_open_clips_ids(tmp_path: Path, clip_json: str) -> None:
    """Immich's exports carry Hugging Face's CLIP tokenizer.json (specials named <|startoftext|>)."""
    from open_clip.tokenizer import SimpleTokenizer

    raw = json.loads(clip_json)
    vocab = raw["model"]["vocab"]
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    raw["model"]["vocab"] = {renamed.get(token, token): index for token, index in vocab.items()}
    raw["model"]["merges"] = [" ".join(pair) for pair in raw["model"]["merges"]]  # the older string form
    for added in raw["added_tokens"]:
        added["content"] = renamed[added["content"]]
    raw["post_processor"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(raw))
    texts = varied_strings(2000, seed=3)
    ours = TextTokenizer.from_file(tmp_path / "tokenizer.json", TokenizerConfig(CLIP_BPE, 77))(texts)
    assert not _mismatches(ours, SimpleTokenizer()(texts).numpy(), texts)


def test_a_foreign_bpe_that_is_not_clips_is_refused(tmp_path: Path, clip_json: str) -> None:
    raw = json.loads(clip_json)
    vocab = raw["model"]["vocab"]
    vocab["a</w>"], vocab["b</w>"] = vocab["b</w>"], vocab["a</w>"]  # a BPE like CLIP's, other ids
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    raw["added_tokens"] = []
    raw["post_processor"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="not CLIP's"):
        TextTokenizer.from_file(tmp_path / "tokenizer.json", TokenizerConfig(CLIP_BPE, 77))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        TextTokenizer.from_file(tmp_path / "tokenizer.json", TokenizerConfig(CLIP_BPE, 77))


def test_the_tokenizer_json_alone_gives_open_clips_ids_for_plain_text(clip_json: str) -> None:
    """Read by other programs (Immich, plain ``tokenizers``) with its own normalizer, padding and specials."""
    from open_clip.tokenizer import SimpleTokenizer
    from tokenizers import Tokenizer

    texts = ascii_strings(2000, seed=4)
    plain = Tokenizer.from_str(clip_json)
    ours = np.array([encoding.ids for encoding in plain.encode_batch(texts)])
    assert not _mismatches(ours, SimpleTokenizer()(texts).numpy(), texts)


def test_plain_ascii_queries_never_import_ftfy() -> None:
    code = (
        "import sys; from retrieval.models.tokenizer import clean_text;"
        "assert clean_text(' A  Photo\\tof a DOG! ') == 'a photo of a dog!';"
        "assert 'ftfy' not in sys.modules;"
        "clean_text('café'); assert 'ftfy' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_config_round_trip_and_refusals() -> None:
    config = TokenizerConfig(HF, 64, "canonicalize", pad_id=1, strip_sep_id=2)
    assert TokenizerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for bad in ({"family": "sentencepiece"}, {"clean": "upper"}, {"context_length": 1}):
        with pytest.raises(ValueError, match="unsupported"):
            TokenizerConfig.from_dict(bad)
