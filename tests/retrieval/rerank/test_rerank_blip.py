"""The BLIP reranker backend, on a tiny random BLIP built offline (no hub access)."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

transformers = pytest.importorskip(
    "transformers", reason="the blip reranker needs transformers (pip install 'xmr[blip]')"
)

from retrieval.errors import BlipWeightsNotFoundError, RerankerError  # noqa: E402
from retrieval.rerank.base import ImageRef  # noqa: E402
from retrieval.rerank.blip import BlipReranker, load_blip_reranker  # noqa: E402

WORDS = "a an the photo of cat dog astronaut coffee cup camera rocket coins red blue green man woman on in".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
TEXTS = ["a photo of a cat", "a red cup of coffee", "an astronaut", "blue coins on the camera", "dog"]


def _tokenizer(folder: Path) -> object:
    """A tiny BertTokenizer from a vocab written here (transformers 5 takes a dict, 4 a file)."""
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")
    params = inspect.signature(transformers.BertTokenizer.__init__).parameters
    if "vocab" in params:
        return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, model_max_length=16)
    return transformers.BertTokenizer(vocab_file=str(vocab_file), model_max_length=16)


def _tiny_config() -> object:
    text = dict(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=16, encoder_hidden_size=32, pad_token_id=0, bos_token_id=2, eos_token_id=3, sep_token_id=3,
    )  # fmt: skip
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    config = transformers.BlipConfig(
        text_config=text, vision_config=vision, projection_dim=16, image_text_hidden_size=16
    )
    # The default 0.02 init makes a 32-wide model's ITM output nearly image-blind (all
    # photos score alike to 1e-7); wider weights give scores that differ between pairs.
    for cfg in (config, config.text_config, config.vision_config):
        cfg.initializer_range = 0.2
    return config


def _save_processor(folder: Path) -> None:
    image_processor = transformers.BlipImageProcessor(size={"height": 32, "width": 32})
    transformers.BlipProcessor(image_processor=image_processor, tokenizer=_tokenizer(folder)).save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny BlipForImageTextRetrieval and its processor, saved like a hub folder."""
    import torch

    folder = tmp_path_factory.mktemp("blip") / "tiny-blip"
    folder.mkdir()
    torch.manual_seed(0)
    transformers.BlipForImageTextRetrieval(_tiny_config()).eval().save_pretrained(folder)
    _save_processor(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_blip(tiny_blip_dir: Path) -> BlipReranker:
    return load_blip_reranker(str(tiny_blip_dir), device="cpu", batch_size=4)


@pytest.fixture(scope="session")
def candidates(photo_source: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    """The six test photos by path, one unreadable file and one in-memory image."""
    broken = tmp_path_factory.mktemp("blip-broken") / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    refs = [ImageRef(id=i, path=str(p)) for i, p in enumerate(sorted(photo_source.iterdir()))]
    refs.insert(3, ImageRef(id=99, path=str(broken)))
    refs.append(ImageRef(image=Image.new("L", (40, 70), 128)))  # greyscale: converted to RGB
    return refs


@pytest.fixture(scope="session")
def decoded_photos(photo_source: Path) -> list[Image.Image]:
    from retrieval.images.decode import decode_file

    return [decode_file(p).image for p in sorted(photo_source.iterdir())]


def _dual(n: int) -> np.ndarray:
    return np.linspace(0.1, 0.3, n, dtype=np.float32)


def test_loaded_through_the_factory(tiny_blip: BlipReranker, tiny_blip_dir: Path) -> None:
    assert tiny_blip.name == f"blip:{tiny_blip_dir}"
    assert tiny_blip.device == "cpu"
    assert not tiny_blip.model.training


def test_probabilities_shape_range_and_broken_file(tiny_blip: BlipReranker, candidates: list[ImageRef]) -> None:
    probs = tiny_blip.rerank_images("a photo of a cat", candidates, _dual(len(candidates)))
    assert probs.shape == (len(candidates),) and probs.dtype == np.float32
    assert np.all((probs >= 0.0) & (probs <= 1.0))
    assert probs[3] == 0.0  # the unreadable file sinks instead of failing the search
    good = np.delete(probs, 3)
    assert np.all(good > 0.0)
    assert np.ptp(good) > 0.0  # different images, different scores (not a constant)


def test_matches_transformers_forward(tiny_blip: BlipReranker, decoded_photos: list[Image.Image]) -> None:
    """The split forward (image encoded once) equals BlipForImageTextRetrieval(use_itm_head=True)."""
    import torch

    images = decoded_photos[:3]
    text = "a red cup of coffee"
    inputs = tiny_blip.processor(images=images, text=[text] * len(images), return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = tiny_blip.model(
            input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
            attention_mask=inputs["attention_mask"], use_itm_head=True,
        ).itm_score  # fmt: skip
    expected = logits.softmax(dim=-1)[:, 1].numpy()
    got = tiny_blip.rerank_images(text, [ImageRef(image=image) for image in images], _dual(3))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_deterministic_and_batch_independent(tiny_blip: BlipReranker, candidates: list[ImageRef]) -> None:
    first = tiny_blip.rerank_images("an astronaut", candidates, _dual(len(candidates)))
    again = tiny_blip.rerank_images("an astronaut", candidates, _dual(len(candidates)))
    np.testing.assert_array_equal(first, again)
    one_by_one = BlipReranker(tiny_blip.name, tiny_blip.model, tiny_blip.processor, "cpu", batch_size=1)
    np.testing.assert_allclose(
        one_by_one.rerank_images("an astronaut", candidates, _dual(len(candidates))), first, atol=1e-6
    )


def test_dual_scores_are_ignored(tiny_blip: BlipReranker, candidates: list[ImageRef]) -> None:
    n = len(candidates)
    a = tiny_blip.rerank_images("dog", candidates, np.zeros(n, dtype=np.float32))
    b = tiny_blip.rerank_images("dog", candidates, np.ones(n, dtype=np.float32))
    np.testing.assert_array_equal(a, b)


def test_images_and_texts_agree_on_the_same_pairs(tiny_blip: BlipReranker, decoded_photos: list[Image.Image]) -> None:
    """P(text, image) is the same whichever side is the query (texts padded to different lengths)."""
    refs = [ImageRef(image=image) for image in decoded_photos[:4]]
    by_text = np.stack([tiny_blip.rerank_images(t, refs, _dual(len(refs))) for t in TEXTS])  # (texts, images)
    by_image = np.stack([tiny_blip.rerank_texts(r, TEXTS, _dual(len(TEXTS))) for r in refs]).T  # (texts, images)
    assert np.ptp(by_text, axis=0).min() > 1e-4 and np.ptp(by_text, axis=1).min() > 1e-4  # both sides matter
    np.testing.assert_allclose(by_image, by_text, atol=1e-5)


def test_texts_with_unreadable_image_and_empty_inputs(tiny_blip: BlipReranker, candidates: list[ImageRef]) -> None:
    broken = candidates[3]
    np.testing.assert_array_equal(tiny_blip.rerank_texts(broken, TEXTS, _dual(len(TEXTS))), np.zeros(len(TEXTS)))
    assert tiny_blip.rerank_images("cat", [], _dual(0)).shape == (0,)
    assert tiny_blip.rerank_texts(candidates[0], [], _dual(0)).shape == (0,)
    long_text = " ".join(["red cat"] * 40)  # longer than the 16 positions: truncated, not an error
    assert 0.0 <= tiny_blip.rerank_texts(candidates[0], [long_text], _dual(1))[0] <= 1.0


def test_caller_errors_are_typed(tiny_blip: BlipReranker, candidates: list[ImageRef]) -> None:
    with pytest.raises(RerankerError, match="dual scores"):
        tiny_blip.rerank_images("cat", candidates, _dual(2))
    with pytest.raises(RerankerError, match="image or a file path"):
        tiny_blip.rerank_images("cat", [ImageRef(id=5)], _dual(1))


def test_missing_folder_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(BlipWeightsNotFoundError, match="no BLIP model folder") as info:
        load_blip_reranker(str(tmp_path / "nowhere" / "blip"), device="cpu")
    assert isinstance(info.value, ValueError)


def test_uncached_repo_offline_names_the_fix() -> None:
    """conftest sets HF_HUB_OFFLINE=1: a repo that is not cached fails fast and says how to get it."""
    start = time.perf_counter()
    with pytest.raises(BlipWeightsNotFoundError, match="hf download xmr-tests/no-such-blip") as info:
        load_blip_reranker("xmr-tests/no-such-blip", device="cpu")
    assert "HF_HUB_OFFLINE" in str(info.value) and "blip:/path/to/folder" in str(info.value)
    assert time.perf_counter() - start < 30  # no network wait


def test_not_a_blip_folder(tmp_path: Path, tiny_blip_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RerankerError, match="no config.json"):
        load_blip_reranker(str(empty), device="cpu")
    bert = tmp_path / "bert"
    transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(bert)
    with pytest.raises(RerankerError, match="'bert' model, not BLIP"):
        load_blip_reranker(str(bert), device="cpu")


def test_captioning_checkpoint_without_itm_head_is_refused(tmp_path: Path) -> None:
    """A BLIP captioning model would load with a random ITM head; refuse it by name."""
    folder = tmp_path / "caption"
    transformers.BlipForConditionalGeneration(_tiny_config()).save_pretrained(folder)
    _save_processor(folder)
    with pytest.raises(RerankerError, match="no trained image-text matching weights"):
        load_blip_reranker(str(folder), device="cpu")
