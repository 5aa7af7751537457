"""InfoNCE against sentence-transformers' MNRL and a loop-based reference; masks; gradcheck; validation."""

from __future__ import annotations

import math

import _loss_reference as ref
import pytest
import torch

from negmine.losses import InfoNCE
from negmine.losses._common import text_keys


def columns(batch=3, num_columns=4, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(num_columns)]


def mnrl(**kwargs):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(None, **kwargs)


@pytest.mark.parametrize("num_columns", [2, 3, 5])
def test_equals_sentence_transformers_mnrl(num_columns):
    emb = columns(batch=4, num_columns=num_columns)
    expected = mnrl(scale=20.0).compute_loss_from_embeddings(emb, None)
    got = InfoNCE(None, temperature=0.05).compute_loss_from_embeddings(emb)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_symmetric_equals_mnrl_per_direction():
    emb = columns(batch=4, num_columns=3)
    expected = mnrl(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    got = InfoNCE(None, symmetric=True).compute_loss_from_embeddings(emb)
    torch.testing.assert_close(got, expected.compute_loss_from_embeddings(emb, None), rtol=0, atol=1e-12)


def test_dot_similarity_matches_reference():
    emb = columns(batch=3, num_columns=3, dim=4)
    loss = InfoNCE(None, temperature=2.0, similarity="dot")
    s = ref.logits(emb, 2.0, "dot")
    expected = sum(-torch.log(s[i][i].exp() / sum(x.exp() for x in s[i])) for i in range(3)) / 3
    torch.testing.assert_close(loss.compute_loss_from_embeddings(emb), expected)


@pytest.mark.parametrize("multi_positive", ["mean", "sum"])
def test_multi_positive_with_spare_slot_and_identical_texts(multi_positive):
    # columns: anchor, positive_1, positive_2, negative_1, negative_2 ; batch of 3
    emb = columns(batch=3, num_columns=5, dim=6, seed=1)
    keys = [torch.tensor([0, 1, 2]),  # anchors
            torch.tensor([10, 11, 12]),  # positive_1
            torch.tensor([20, 11, 22]),  # positive_2: row 1 repeats its first positive (a spare slot)
            torch.tensor([30, 31, 20]),  # negative_1: row 2's negative is row 0's second positive (same doc)
            torch.tensor([40, 0, 42])]  # negative_2: row 1's negative has row 0's anchor text
    loss = InfoNCE(None, temperature=0.1, num_positive_columns=2, multi_positive=multi_positive)
    got = loss.compute_loss_from_embeddings(emb, text_keys=keys)
    status = ref.classify(emb, num_pos=2, keys=keys)
    assert status[1][4] == "out"  # the spare slot
    assert status[0][8] == "out" and status[0][10] == "out"  # same document / identical text, masked for row 0
    assert status[2][8] == "neg"  # for its own row it is a negative
    expected = ref.infonce(emb, status, 0.1, multi_positive)
    torch.testing.assert_close(got, expected)


def test_spare_slot_marked_by_nan_score():
    emb = columns(batch=2, num_columns=4, seed=2)
    labels = torch.tensor([[0.9, 0.8, 0.1], [0.9, math.nan, 0.2]], dtype=torch.float64)
    got = InfoNCE(None, num_positive_columns=2).compute_loss_from_embeddings(emb, labels)
    status = ref.classify(emb, num_pos=2, labels=labels)
    assert status[1][3] == "out"
    torch.testing.assert_close(got, ref.infonce(emb, status, 0.05))


def test_identical_text_masking_can_be_switched_off():
    emb = columns(batch=3, num_columns=3, seed=3)
    keys = [torch.tensor([0, 1, 2]), torch.tensor([10, 11, 12]), torch.tensor([11, 20, 21])]
    on = InfoNCE(None).compute_loss_from_embeddings(emb, text_keys=keys)
    off = InfoNCE(None, mask_identical_texts=False).compute_loss_from_embeddings(emb, text_keys=keys)
    torch.testing.assert_close(off, mnrl().compute_loss_from_embeddings(emb, None))
    torch.testing.assert_close(on, ref.infonce(emb, ref.classify(emb, keys=keys), 0.05))
    assert not torch.allclose(on, off)


@pytest.mark.parametrize("strategy,margin", [("absolute", 0.1), ("relative", 0.2)])
def test_margin_masking_with_teacher_scores(strategy, margin):
    emb = columns(batch=3, num_columns=4, seed=4)
    labels = torch.tensor([[0.8, 0.75, 0.2], [0.6, 0.1, 0.55], [0.5, 0.3, 0.2]], dtype=torch.float64)
    loss = InfoNCE(None, margin=margin, margin_strategy=strategy)
    got = loss.compute_loss_from_embeddings(emb, labels)
    reference = ref.labels_reference(labels, 3, 3)
    status = ref.classify(emb, labels=labels, reference=reference, margin=margin, strategy=strategy)
    assert sum(row.count("out") for row in status) >= 2  # the 0.75 and the 0.55 negatives are masked
    torch.testing.assert_close(got, ref.infonce(emb, status, 0.05))


def test_margin_masking_with_guide_embeddings():
    emb = columns(batch=3, num_columns=3, seed=5)
    guide = columns(batch=3, num_columns=3, seed=6)
    guide[2][0] = guide[0][0] * 1.5  # row 0's hard negative looks exactly like the query to the guide
    loss = InfoNCE(None, margin=0.0)
    got = loss.compute_loss_from_embeddings(emb, reference_embeddings=guide)
    reference = [[float(ref.cos(guide[0][i], v)) for _, _, v in ref.candidates(guide)] for i in range(3)]
    status = ref.classify(emb, reference=reference, margin=0.0)
    assert status[0][3] == "out"
    torch.testing.assert_close(got, ref.infonce(emb, status, 0.05))


def test_gradcheck_float64():
    emb = [e.clone().requires_grad_(True) for e in columns(batch=2, num_columns=4, dim=3, seed=7)]
    keys = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 3]), torch.tensor([5, 6])]
    loss = InfoNCE(None, temperature=0.5, num_positive_columns=2, symmetric=True)
    assert torch.autograd.gradcheck(lambda *e: loss.compute_loss_from_embeddings(list(e), text_keys=keys), emb)


def test_text_keys_ignore_padding():
    features = [
        {"input_ids": torch.tensor([[101, 7, 8, 102, 0], [101, 9, 102, 0, 0]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])},
        {"input_ids": torch.tensor([[101, 9, 102], [101, 5, 102]]),
         "attention_mask": torch.ones(2, 3, dtype=torch.long)},
    ]
    keys = text_keys(features)
    assert keys[0][1] == keys[1][0]  # the same text padded differently
    assert len({int(k) for col in keys for k in col}) == 3


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0}, "temperature=0"),
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"similarity": "l2"}, "similarity='l2'"),
    ({"num_positive_columns": 0}, "num_positive_columns=0"),
    ({"multi_positive": "max"}, "multi_positive='max'"),
    ({"margin_strategy": "percent"}, "margin_strategy='percent'"),
    ({"margin": -0.1, "margin_strategy": "relative"}, "margin=-0.1"),
])
def test_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InfoNCE(None, **kwargs)


def test_bad_shapes_are_reported():
    emb = columns(batch=2, num_columns=3)
    with pytest.raises(ValueError, match="at least 3 columns"):
        InfoNCE(None, num_positive_columns=2).compute_loss_from_embeddings(emb[:2])
    with pytest.raises(ValueError, match=r"labels of shape \(2, 5\)"):
        InfoNCE(None).compute_loss_from_embeddings(emb, torch.zeros(2, 5))


def test_guide_must_not_be_the_trained_model():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="guide is the model being trained"):
        InfoNCE(model, guide=model)


def test_config_and_citation():
    loss = InfoNCE(None, temperature=0.02, num_positive_columns=2, margin=0.05)
    config = loss.get_config_dict()
    assert config["temperature"] == 0.02 and config["num_positive_columns"] == 2 and config["margin"] == 0.05
    assert "@misc{oord2018representation" in loss.citation


class TinyEncoder(torch.nn.Module):
    """A bag-of-tokens encoder standing in for a SentenceTransformer (same forward contract)."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(50, 4, mode="sum")
        torch.nn.init.normal_(self.bag.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, features):
        weights = features["attention_mask"].to(self.bag.weight.dtype)
        return {"sentence_embedding": self.bag(features["input_ids"], per_sample_weights=weights)}


def _features(rows):
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_forward_derives_text_keys_from_token_ids():
    model = TinyEncoder()
    # rows: (anchor, positive_1, positive_2, negative); row 1's spare slot repeats its positive; row 0's negative
    # is row 1's positive (same text, padded differently in another column)
    features = [_features([[1, 2], [3, 4]]), _features([[5, 6, 7], [8, 9]]), _features([[10, 11], [8, 9]]),
                _features([[8, 9], [12, 13, 14, 15]])]
    loss = InfoNCE(model, num_positive_columns=2)
    got = loss([dict(f) for f in features])
    embeddings = [model(f)["sentence_embedding"] for f in features]
    keys = text_keys(features)
    assert keys[3][0] == keys[1][1] and keys[2][1] == keys[1][1]
    torch.testing.assert_close(got, loss.compute_loss_from_embeddings(embeddings, text_keys=keys))
    status = ref.classify([e.double() for e in embeddings], num_pos=2, keys=keys)
    assert status[1][3] == "out" and status[0][4] == "neg" and status[1][4] == "out"
    expected = ref.infonce([e.double() for e in embeddings], status, 0.05)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)  # float32 model
    got.backward()
    assert model.bag.weight.grad is not None
