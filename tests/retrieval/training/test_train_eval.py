"""Training lowers the loss, is deterministic and resumable; eval metrics match oracles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import PairsFormatError, TrainingError
from retrieval.ingest.pairs import load_pairs
from retrieval.training import shapes_world
from retrieval.training.data import mirror_caption
from retrieval.training.dual import TrainConfig, train
from retrieval.training.metrics import i2t_ranks, recall_at, t2i_ranks
from tests.helpers.tiny_model import TINY_CFG


@pytest.fixture(scope="session")
def shapes_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_world.generate(tmp_path_factory.mktemp("shapes") / "pairs", count=48, seed=3, size=32, split="train")


@pytest.fixture(scope="session")
def tiny_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("arch") / "tiny-arch.json"
    path.write_text(json.dumps(TINY_CFG))
    return str(path)


def _config(tiny_arch: str, **overrides: object) -> TrainConfig:
    base = {"arch": tiny_arch, "steps": 12, "batch_size": 16, "lr": 2e-3, "warmup_steps": 2, "checkpoint_seconds": 0.0}
    return TrainConfig(**{**base, **overrides})


def _fixed_batch_loss(model_dir: Path, pairs_dir: Path) -> float:
    import open_clip
    import torch

    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec
    from retrieval.training.data import ImageCache, make_batch
    from retrieval.training.dual import contrastive_loss

    encoder = load_encoder(ModelSpec(str(model_dir)), device="cpu")
    pairs = load_pairs(pairs_dir)
    cache = ImageCache(pairs.images, 32)
    batch = make_batch(
        pairs, cache, np.arange(len(pairs)), step=0, seed=0, mean=(0.5,) * 3, std=(0.5,) * 3, augment=False
    )
    with torch.no_grad():
        return float(contrastive_loss(encoder.model, open_clip.get_tokenizer(f"local-dir:{model_dir}"), batch))


def test_training_lowers_the_loss(shapes_pairs: Path, tiny_arch: str, tmp_path: Path) -> None:
    before = train(shapes_pairs, tmp_path / "before", _config(tiny_arch, steps=1, lr=1e-9))
    after = train(shapes_pairs, tmp_path / "after", _config(tiny_arch, steps=40))
    assert _fixed_batch_loss(after, shapes_pairs) < _fixed_batch_loss(before, shapes_pairs) - 0.3
    state = json.loads((after / "train.json").read_text())
    assert state["done"] and state["step"] == 40 and not (after / "checkpoint.pt").exists()


def test_same_seed_same_weights_and_resume_matches(shapes_pairs: Path, tiny_arch: str, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    first = train(shapes_pairs, tmp_path / "a", _config(tiny_arch))
    second = train(shapes_pairs, tmp_path / "b", _config(tiny_arch))

    def stop_at_five(progress) -> None:  # noqa: ANN001
        if progress.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(shapes_pairs, tmp_path / "c", _config(tiny_arch), on_progress=stop_at_five)
    assert json.loads((tmp_path / "c" / "train.json").read_text())["step"] == 5
    resumed = train(shapes_pairs, tmp_path / "c", _config(tiny_arch))
    weights = [load_file(str(d / "open_clip_model.safetensors")) for d in (first, second, resumed)]
    for name, value in weights[0].items():
        np.testing.assert_array_equal(value, weights[1][name])
        np.testing.assert_allclose(value, weights[2][name], rtol=0, atol=1e-6)


def test_other_settings_in_same_folder_are_refused(shapes_pairs: Path, tiny_arch: str, tmp_path: Path) -> None:
    train(shapes_pairs, tmp_path / "m", _config(tiny_arch, steps=2))
    with pytest.raises(TrainingError, match="other settings"):
        train(shapes_pairs, tmp_path / "m", _config(tiny_arch, steps=3))


def test_trained_folder_round_trips_through_the_loader(shapes_pairs: Path, tiny_arch: str, tmp_path: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import load_file

    from retrieval.models.encoder import load_encoder
    from retrieval.models.specs import ModelSpec

    folder = train(shapes_pairs, tmp_path / "m", _config(tiny_arch, steps=3))
    model = open_clip.CLIP(**TINY_CFG)
    model.load_state_dict(load_file(str(folder / "open_clip_model.safetensors")))
    model.eval()
    encoder = load_encoder(ModelSpec(f"local-dir:{folder}"), device="cpu")
    texts = ["a red circle", "a blue square above a green triangle"]
    with torch.no_grad():
        direct = model.encode_text(open_clip.get_tokenizer(f"local-dir:{folder}")(texts), normalize=True).numpy()
    np.testing.assert_allclose(encoder.encode_texts(texts), direct, atol=1e-6)


def test_eval_cli_json_on_shapes(shapes_pairs: Path, tiny_model_dir: Path) -> None:
    from typer.testing import CliRunner

    import cli

    result = CliRunner().invoke(
        cli.app, ["eval", str(shapes_pairs), "--model", str(tiny_model_dir), "--json", "--groups", "shapes-world"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["count"] == 48 and set(report["t2i"]) == {"R@1", "R@5", "R@10"}
    assert 0.0 <= report["binding"] <= 1.0
    groups = report["groups"]
    assert set(groups) <= {"one-object", "two-object"} and sum(g["count"] for g in groups.values()) == 48


def _oracle_recalls(text: np.ndarray, image: np.ndarray, owners: list[int]) -> tuple[dict, dict]:
    scores = text @ image.T
    t2i = [1 + sum(scores[j, i] > scores[j, owners[j]] for i in range(len(image))) for j in range(len(text))]
    i2t = []
    for i in range(len(image)):
        gold = max(scores[j, i] for j in range(len(text)) if owners[j] == i)
        i2t.append(1 + sum(scores[j, i] > gold for j in range(len(text))))
    return recall_at(np.array(t2i)), recall_at(np.array(i2t))


def test_chunked_recall_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(37, 8)).astype(np.float32)
    owners = [i for i in range(37) for _ in range(1 + i % 3)]  # 1-3 captions per image
    text = (image[owners] + rng.normal(scale=1.2, size=(len(owners), 8))).astype(np.float32)
    text[5] = text[4]  # ties are counted in the gold's favour in both implementations
    expected_t2i, expected_i2t = _oracle_recalls(text, image, owners)
    assert recall_at(t2i_ranks(text, image, owners, chunk=7)) == expected_t2i
    assert recall_at(i2t_ranks(text, image, owners, chunk=5)) == expected_i2t
    assert 0 < expected_t2i["R@1"] < expected_t2i["R@10"] < 1


def test_karpathy_split_json(tmp_path: Path, photo_source: Path) -> None:
    files = sorted(photo_source.iterdir())
    (tmp_path / "val2014").mkdir()
    for f in files[:3]:
        (tmp_path / "val2014" / f.name).write_bytes(f.read_bytes())
    entries = [
        {
            "filepath": "val2014",
            "filename": files[0].name,
            "split": "test",
            "sentences": [{"raw": "A cat. "}, {"raw": "a kitten"}],
        },
        {"filepath": "val2014", "filename": files[1].name, "split": "test", "sentences": [{"raw": "coffee"}]},
        {"filepath": "val2014", "filename": files[2].name, "split": "train", "sentences": [{"raw": "rocket"}]},
    ]
    (tmp_path / "dataset.json").write_text(json.dumps({"images": entries}))
    pairs = load_pairs(tmp_path / "dataset.json", split="test")
    assert pairs.captions == ("A cat.", "a kitten", "coffee")
    assert pairs.caption_image == (0, 0, 1) and len(pairs.images) == 2 and not pairs.has_negatives
    with pytest.raises(PairsFormatError, match="no images in split"):
        load_pairs(tmp_path / "dataset.json", split="val")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"image": "images/a.png", "caption": "x"', "not valid JSON"),
        ('{"image": "images/a.png", "caption": "  "}', 'empty "caption"'),
        ('{"image": "images/missing.png", "caption": "x"}', "does not exist"),
        ('{"caption": "x"}', '"image"'),
        ('{"image": "images/a.png", "caption": "x", "negatives": "y"}', "negatives"),
    ],
)
def test_bad_pairs_lines_name_the_line(tmp_path: Path, line: str, fragment: str) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    good = '{"image": "images/a.png", "caption": "a red circle"}'
    (tmp_path / "pairs.jsonl").write_text(f"{good}\n\n{line}\n")
    with pytest.raises(PairsFormatError, match=fragment) as caught:
        load_pairs(tmp_path)
    assert "pairs.jsonl:3" in str(caught.value)


def test_mirrored_captions_swap_left_and_right_only() -> None:
    assert mirror_caption("a red circle to the left of a blue square") == "a red circle to the right of a blue square"
    assert mirror_caption("a red circle to the right of a blue square") == "a red circle to the left of a blue square"
    assert mirror_caption("a red circle above a blue square") == "a red circle above a blue square"
    assert mirror_caption("a bright room") == "a bright room"


def test_reverse_relations_swaps_both_axes_and_leaves_other_words() -> None:
    from retrieval.training.data import reverse_relations

    assert (
        reverse_relations("a red circle to the left of a blue square") == "a red circle to the right of a blue square"
    )
    assert reverse_relations("a red circle below a blue square") == "a red circle above a blue square"
    assert reverse_relations("a cat above a dog, left of a tree") == "a cat below a dog, right of a tree"
    assert reverse_relations("leftover bread on a belowground shelf") == "leftover bread on a belowground shelf"
    assert (
        reverse_relations(reverse_relations("a green square above a red circle")) == "a green square above a red circle"
    )


def test_canonical_caption_joins_converse_relations() -> None:
    from retrieval.training.data import canonical_caption

    left = "a red circle to the left of a blue square"
    assert canonical_caption("a blue square to the right of a red circle") == left
    assert canonical_caption(left) == left
    assert canonical_caption("a red circle below a blue square") == "a blue square above a red circle"
    assert canonical_caption("a small red circle") == "a small red circle"


def test_loss_ignores_columns_that_describe_the_same_scene() -> None:
    import torch

    from retrieval.training.data import Batch
    from retrieval.training.dual import contrastive_loss

    class Fixed(torch.nn.Module):
        """Text i (and its converse) embeds like image i; everything else is orthogonal."""

        def __init__(self) -> None:
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(4.0))

        def encode_image(self, pixels, normalize=True):  # noqa: ANN001, ANN201, FBT002
            return pixels

        def encode_text(self, tokens, normalize=True):  # noqa: ANN001, ANN201, FBT002
            return tokens

    captions = ["a red circle to the left of a blue square", "a blue square to the right of a red circle"]
    vectors = {
        captions[0]: [1.0, 0.0],
        captions[1]: [1.0, 0.0],
        "a red circle to the right of a blue square": [0.0, 1.0],
    }
    tokenizer = lambda texts: torch.tensor([vectors[t] for t in texts])  # noqa: E731
    pixels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    batch = Batch(pixels, captions, ["a red circle to the right of a blue square"], [0])
    # Both images show the same scene: without masking the loss would be log(2) at best.
    assert contrastive_loss(Fixed(), tokenizer, batch).item() < 0.05


def test_train_cli_writes_a_model_every_command_accepts(shapes_pairs: Path, tiny_arch: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import cli

    runner = CliRunner()
    out = tmp_path / "model"
    args = [
        "train",
        str(shapes_pairs),
        "--out",
        str(out),
        "--arch",
        tiny_arch,
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--warmup",
        "1",
    ]
    trained = runner.invoke(cli.app, args)
    assert trained.exit_code == 0, trained.output
    assert f"--model {out}" in trained.stderr.replace("\n", "")
    images = shapes_pairs.parent / "images"
    indexed = runner.invoke(
        cli.app, ["index", str(images), "--library", str(tmp_path / "lib"), "--model", str(out), "--json"]
    )
    assert indexed.exit_code == 0 and json.loads(indexed.stdout)["added"] == 48
    again = runner.invoke(cli.app, [*args[:-2], "--warmup", "2"])  # other settings, same folder
    assert again.exit_code == 2 and "other settings" in again.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pairs.jsonl").write_text("{not json\n")
    refused = runner.invoke(cli.app, ["train", str(broken), "--out", str(tmp_path / "m2"), "--arch", tiny_arch])
    assert refused.exit_code == 2 and "pairs.jsonl:1: not valid JSON" in refused.stderr.replace("\n", "")
    assert "training" not in refused.stderr  # no progress bar for a run that never started


def test_shapes_world_negative_kinds() -> None:
    from retrieval.training.shapes_world import negative_kind as kind

    caption = "a red circle to the left of a blue square"
    assert kind(caption, "a blue circle to the left of a red square") == "colour"
    assert kind(caption, "a red circle to the right of a blue square") == "relation"
    assert kind(caption, "a red square to the left of a blue circle") == "shape"
    assert kind("a small red circle", "a large red circle") == "size"
    assert kind("a small red circle", "a small red square") == "shape"
    assert kind(caption, "a cat") == "other"


def test_binding_by_negative_matches_hand_computed_wins() -> None:
    from retrieval.ingest.pairs import PairSet
    from retrieval.training.evaluate import (
        PairEmbeddings,
        binding_by_negative,
        dual_scores,
    )
    from retrieval.training.shapes_world import (
        negative_kind as shapes_world_negative_kind,
    )

    caption = "a red circle to the left of a blue square"
    colour, relation = "a blue circle to the left of a red square", "a red circle to the right of a blue square"
    pairs = PairSet(
        (Path("a.png"), Path("b.png")), (caption, caption), (0, 1), ((colour, relation), (colour, relation))
    )
    image = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    text = np.array([[0.8, 0.6], [0.8, 0.6]], np.float32)  # scores: image a 0.8, image b 0.6
    negatives = (np.array([[0.0, 1.0], [0.6, 0.8]], np.float32),) * 2  # a: 0.0, 0.6 / b: 1.0, 0.8
    result = binding_by_negative(
        pairs, dual_scores(pairs, PairEmbeddings(image, text, negatives)), shapes_world_negative_kind
    )
    assert result == {"colour": 0.5, "relation": 0.5}


def test_fine_tuning_starts_from_the_given_model(shapes_pairs: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from retrieval.models.specs import ModelSpec, resolve

    untouched = train(
        shapes_pairs,
        tmp_path / "ft0",
        TrainConfig(init=str(tiny_model_dir), steps=1, batch_size=8, lr=1e-12, warmup_steps=1),
    )
    tuned = train(
        shapes_pairs,
        tmp_path / "ft",
        TrainConfig(init=str(tiny_model_dir), steps=4, batch_size=8, lr=1e-3, warmup_steps=1),
    )
    base = load_file(str(tiny_model_dir / "open_clip_model.safetensors"))
    start, end = (
        load_file(str(untouched / "open_clip_model.safetensors")),
        load_file(str(tuned / "open_clip_model.safetensors")),
    )
    name = "visual.conv1.weight"
    np.testing.assert_allclose(start[name], base[name], atol=1e-6)  # began from the given weights
    assert np.abs(end[name] - base[name]).max() > 1e-4  # and moved
    assert resolve(ModelSpec(str(tuned))).identity.embed_dim == 32


def test_a_resumed_run_says_so_and_a_warm_up_as_long_as_the_run_is_warned(
    shapes_pairs: Path, tiny_arch: str, tmp_path: Path
) -> None:
    import logging

    class Kept(logging.Handler):  # on the module's logger itself: the CLI may stop propagation above it
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    def stop_at_two(progress) -> None:  # noqa: ANN001
        if progress.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(shapes_pairs, tmp_path / "r", _config(tiny_arch, steps=4), on_progress=stop_at_two)
    logger, kept = logging.getLogger("retrieval.training.dual"), Kept()
    level = logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.WARNING)  # whatever an earlier CLI test (-q) set above it
    try:
        notes: list[str] = []
        train(shapes_pairs, tmp_path / "r", _config(tiny_arch, steps=4), on_stage=notes.append)
        assert notes == ["loading the pairs", "building the model", "resuming at step 2 of 4"]
        assert kept.messages == []  # 2 warm-up steps of 4: fine
        train(shapes_pairs, tmp_path / "w", _config(tiny_arch, steps=2, warmup_steps=5))
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)
    assert any("warm-up (5 steps) is as long as the whole run (2 steps)" in m for m in kept.messages)
