"""Reranker ablations on Shapes World: train variants over one frozen encoder, evaluate each.

Generates the train (seed 1) and eval (seed 2) splits under $WORK if absent, extracts token
features once, then for each (name, {"cfg": RerankTrainConfig overrides, "ks": [K...]})
trains a reranker and prints `xmr eval`-style metrics (plus binding on 2,000 training
lines, to tell memorising from learning); results go to $OUT/results.json. Made for a GPU
(DEVICE=cuda, the default); DEVICE=cpu works but is slow. The tables in
benchmarks/README.md "Reranking" come from runs of this script on a lent H100:

    ENCODER=OUT/encoder python benchmarks/rerank_ablation.py '[["full", {"ks": [20, 50, 100]}], ["concat", {"cfg": {"fusion": "concat"}}]]'
"""

import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, ".")
from pathlib import Path

import numpy as np
import torch

from retrieval.errors import RerankerError
from retrieval.ingest.pairs import load_pairs
from retrieval.models.encoder import load_encoder
from retrieval.models.specs import ModelSpec
from retrieval.training import shapes_world
from retrieval.training.checkpoints import RunFolder
from retrieval.training.corpus import encode_image_bank, encode_text_bank, pair_texts
from retrieval.training.evaluate import PairEmbeddings, dual_scores, report
from retrieval.training.rerank_eval import net_scorer, reranked_scores
from retrieval.training.rerank_train import (
    RerankTrainConfig,
    _loop,
    _optimizer,
    prepare,
)

out = Path(os.environ.get("OUT", "/tmp/out"))
out.mkdir(parents=True, exist_ok=True)
work = Path(os.environ.get("WORK", "/tmp/rrwork"))
work.mkdir(exist_ok=True)
t0 = time.time()
train_dir, test_dir = work / "train", work / "test"
if not (train_dir / "pairs.jsonl").exists():
    shapes_world.generate(train_dir, count=int(os.environ.get("TRAIN_COUNT", "30000")), seed=1, split="train")
    shapes_world.generate(test_dir, count=int(os.environ.get("TEST_COUNT", "1000")), seed=2, split="eval")
print("data", round(time.time() - t0), flush=True)
DEV = os.environ.get("DEVICE", "cuda")
enc = load_encoder(ModelSpec(os.environ.get("ENCODER", ".rr/encoder"), ""), DEV)
data = prepare(load_pairs(train_dir), enc, 16)
test = load_pairs(test_dir)
timg = encode_image_bank(enc, test.images)
ttext = encode_text_bank(enc, pair_texts(test))
print("features", round(time.time() - t0), flush=True)
rows = np.array([ttext.index[c] for c in test.captions])
emb = PairEmbeddings(
    timg.vectors,
    ttext.vectors[rows],
    tuple(
        np.stack([ttext.vectors[ttext.index[n]] for n in negs])
        if negs
        else np.zeros((0, timg.vectors.shape[1]), np.float32)
        for negs in test.negatives
    ),
)


def short(r):
    return {
        "t2i": r["t2i"],
        "i2t": r["i2t"],
        "binding": r.get("binding"),
        "bbn": r.get("binding_by_negative"),
        "one": {k: r["groups"]["one-object"][k] for k in ("t2i", "i2t", "binding")},
        "two": {k: r["groups"]["two-object"][k] for k in ("t2i", "i2t", "binding")},
    }


results = {"dual": short(report(test, dual_scores(test, emb), "shapes-world"))}
print("dual", json.dumps(results["dual"]), flush=True)
configs = json.loads(sys.argv[1])
import traceback

for name, over in configs:
    try:
        cfg = dataclasses.replace(RerankTrainConfig(checkpoint_seconds=1e9), **over.get("cfg", {}))
        torch.manual_seed(0)
        from retrieval.training.rerank_train import build_net

        net = build_net(cfg, enc).to(DEV)
        opt = _optimizer(net, cfg)
        t = time.time()
        losses = _loop(
            net, opt, data, cfg, RunFolder(work / name, {}, RerankerError), 0, None
        )  # checkpoint_seconds 1e9: never writes
        train_s = time.time() - t
        score = net_scorer(net, ttext, timg)
        trs = net_scorer(net, data.texts, data.images)
        lines = range(min(2000, len(data.pairs)))
        wins = []
        for j in lines:
            negs = data.pairs.negatives[j]
            if not negs:
                continue
            i = data.pairs.caption_image[j]
            rows_ = np.array([data.texts.index[data.pairs.captions[j]]] + [data.texts.index[n] for n in negs])
            sc = trs(rows_, np.full(len(rows_), i))
            wins.append(sc[0] > sc[1:].max())
        print(name, "train-binding", float(np.mean(wins)), flush=True)
        for k in over.get("ks", [50]):
            r = short(report(test, reranked_scores(test, ttext, timg, score, k), "shapes-world"))
            r.update(train_s=round(train_s, 1), loss=round(float(np.mean(losses)), 4), k=k, cfg=over.get("cfg", {}))
            results[f"{name}@{k}"] = r
            print(name, k, json.dumps(r), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    except Exception:
        traceback.print_exc()
print("total", round(time.time() - t0), flush=True)
