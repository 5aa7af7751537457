"""negmine's sentence-transformers losses: drop-in ``loss=`` objects for ``SentenceTransformerTrainer``.

Every loss takes ``(model, ...)``, reads columns in sentence-transformers' order ``(anchor, positive[_1..P],
negative_1..n)``, accepts the mined ``scores`` column as ``labels`` and exposes ``compute_loss_from_embeddings``,
``get_config_dict`` and ``citation``. The input convention (several positives, masking) is described in
:mod:`negmine.losses._masks`.

>>> from negmine.losses import InfoNCE  # doctest: +SKIP
>>> trainer = SentenceTransformerTrainer(model=model, train_dataset=ds, loss=InfoNCE(model))  # doctest: +SKIP
"""

from __future__ import annotations

from negmine.losses.cwcl import CWCL
from negmine.losses.dice import Dice
from negmine.losses.infonce import InfoNCE
from negmine.losses.listwise import ListwiseDistillation
from negmine.losses.margin_mse import MarginMSE
from negmine.losses.mixing import HardNegativeMixing
from negmine.losses.soft_infonce import SoftInfoNCE

# CLI name -> class (``negmine train --loss NAME``)
LOSSES = {
    "infonce": InfoNCE,
    "soft-infonce": SoftInfoNCE,
    "dice": Dice,
    "cwcl": CWCL,
    "mixing": HardNegativeMixing,
    "listwise": ListwiseDistillation,
    "margin-mse": MarginMSE,
}

__all__ = ["CWCL", "Dice", "HardNegativeMixing", "InfoNCE", "LOSSES", "ListwiseDistillation", "MarginMSE",
           "SoftInfoNCE"]
