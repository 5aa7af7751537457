"""Plain, loop-based reference implementations of negmine's losses (float64 Python, no masking tricks).

Each candidate of row ``i`` is classified one at a time as a positive, a negative or left out, following the
convention of negmine.losses._masks; the losses are then written term by term from docs/methods.md.
"""

from __future__ import annotations

import math

import torch


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b) / (a.norm() * b.norm())


def candidates(embeddings):
    """List of (row, column, vector) in column-major order: all rows of column 1, then column 2, ..."""
    out = []
    for c, column in enumerate(embeddings[1:]):
        for k in range(column.size(0)):
            out.append((k, c, column[k]))
    return out


def classify(embeddings, num_pos=1, keys=None, labels=None, reference=None, margin=None, strategy="absolute",
             mask_identical=True):
    """status[i][j] in {"pos", "neg", "out"}."""
    batch = embeddings[0].size(0)
    cands = candidates(embeddings)
    status = []
    for i in range(batch):
        valid_slots = []
        for c in range(num_pos):
            if labels is not None and math.isnan(float(labels[i][c])):
                continue
            if keys is not None and any(keys[1 + c][i] == keys[1 + e][i] for e in range(c)):
                continue
            valid_slots.append(c)
        pos_keys = [keys[1 + c][i] for c in valid_slots] if keys is not None else []
        if reference is not None:
            known = [float(reference[i][c * batch + i]) for c in valid_slots]
            lowest = min(known) if known and not any(math.isnan(v) for v in known) else math.inf
        row = []
        for j, (k, c, _) in enumerate(cands):
            if k == i and c < num_pos:
                row.append("pos" if c in valid_slots else "out")
                continue
            state = "neg"
            if mask_identical and keys is not None:
                key = keys[1 + c][k]
                if key == keys[0][i] or key in pos_keys:
                    state = "out"
            if margin is not None and reference is not None and state == "neg":
                r = float(reference[i][j])
                if not math.isnan(r) and lowest != math.inf:
                    threshold = lowest - margin if strategy == "absolute" else lowest - abs(lowest) * margin
                    if r > threshold:
                        state = "out"
            row.append(state)
        status.append(row)
    return status


def labels_reference(labels, batch, num_columns):
    """(B, C) with the row's own candidates' labels and NaN elsewhere."""
    ref = [[math.nan] * (batch * num_columns) for _ in range(batch)]
    for i in range(batch):
        for c in range(num_columns):
            ref[i][c * batch + i] = float(labels[i][c])
    return ref


def logits(embeddings, temperature, similarity="cosine"):
    q = embeddings[0]
    cands = candidates(embeddings)
    out = []
    for i in range(q.size(0)):
        row = []
        for _, _, v in cands:
            s = cos(q[i], v) if similarity == "cosine" else q[i] @ v
            row.append(s / temperature)
        out.append(row)
    return out


def infonce(embeddings, status, temperature=0.05, multi_positive="mean", weights=None, extra=None):
    """``weights[i][j]`` multiplies ``exp(s_ij)`` of negatives; ``extra[i]`` are extra negative logits."""
    s = logits(embeddings, temperature)
    total = 0.0
    for i, row in enumerate(status):
        negs = [s[i][j].exp() * (1.0 if weights is None else weights[i][j]) for j, st in enumerate(row) if st == "neg"]
        if extra is not None:
            negs += [x.exp() for x in extra[i]]
        neg_sum = sum(negs) if negs else torch.tensor(0.0, dtype=torch.float64)
        pos = [s[i][j] for j, st in enumerate(row) if st == "pos"]
        if multi_positive == "mean":
            total = total + sum(-torch.log(p.exp() / (p.exp() + neg_sum)) for p in pos) / len(pos)
        else:
            pos_sum = sum(p.exp() for p in pos)
            total = total - torch.log(pos_sum / (pos_sum + neg_sum))
    return total / len(status)


def soft_weights(status, relevance, alpha, beta, t, w_min):
    weights = []
    for i, row in enumerate(status):
        negs = [j for j, st in enumerate(row) if st == "neg"]
        known = [relevance[i][j] for j in negs if not math.isnan(relevance[i][j])]
        fill = min(known) if known else 0.0
        m = {j: (fill if math.isnan(relevance[i][j]) else relevance[i][j]) for j in negs}
        z = sum(math.exp(v / t) for v in m.values())
        w_row = [1.0] * len(row)
        for j in negs:
            p = math.exp(m[j] / t) / z
            w_row[j] = max(w_min, (beta - alpha * p) / (beta - alpha / len(negs)))
        weights.append(w_row)
    return weights


def dice(embeddings, status, temperature, alpha, gamma, square=True):
    s = logits(embeddings, temperature)
    total = 0.0
    for i, row in enumerate(status):
        members = [j for j, st in enumerate(row) if st != "out"]
        z = sum(s[i][j].exp() for j in members)
        inter = 0.0
        q_sq = 0.0
        y_sq = 0.0
        for j in members:
            p = s[i][j].exp() / z
            q = (1 - p) ** alpha * p
            y = 1.0 if row[j] == "pos" else 0.0
            inter = inter + q * y
            q_sq = q_sq + (q * q if square else q)
            y_sq = y_sq + (y * y if square else y)
        total = total + 1 - (2 * inter + gamma) / (q_sq + y_sq + gamma)
    return total / len(status)


def cwcl(embeddings, status, temperature, raw, power=1.0, threshold=0.0, rescale=True):
    s = logits(embeddings, temperature)
    total = 0.0
    for i, row in enumerate(status):
        members = [j for j, st in enumerate(row) if st != "out"]
        w = {}
        for j in members:
            if row[j] == "pos":
                w[j] = 1.0
                continue
            r = raw[i][j]
            if math.isnan(r):
                w[j] = 0.0
                continue
            v = max((r + 1) / 2 if rescale else r, 0.0) ** power
            w[j] = v if v >= threshold else 0.0
        z = sum(s[i][j].exp() for j in members)
        norm = sum(w.values())
        total = total - sum(w[j] / norm * torch.log(s[i][j].exp() / z) for j in members)
    return total / len(status)


def own_list(status, labels, batch):
    """Per row: the (column, candidate index) pairs of its distillation list (own pos/neg, known teacher score)."""
    out = []
    for i, row in enumerate(status):
        items = []
        for c in range(len(labels[i])):
            j = c * batch + i
            if row[j] in ("pos", "neg") and not math.isnan(float(labels[i][c])):
                items.append((c, j))
        out.append(items)
    return out


def listwise_kl(embeddings, status, labels, temperature, teacher_temperature, similarity="cosine"):
    """mean_i sum_j p^T_ij (log p^T_ij - log p^S_ij) over each row's own list, term by term."""
    s = logits(embeddings, temperature, similarity)
    batch = embeddings[0].size(0)
    total = 0.0
    for i, items in enumerate(own_list(status, labels, batch)):
        t_exp = [math.exp(float(labels[i][c]) / teacher_temperature) for c, _ in items]
        s_exp = [s[i][j].exp() for _, j in items]
        t_sum, s_sum = sum(t_exp), sum(s_exp)
        for k in range(len(items)):
            p_t = t_exp[k] / t_sum
            total = total + p_t * (math.log(p_t) - torch.log(s_exp[k] / s_sum))
    return total / batch


def margin_mse(embeddings, status, labels, num_pos, similarity="dot"):
    """mean_i mean_{(p, n)} ((s_p - s_n) - (y_p - y_n))^2 over each row's own valid pairs."""
    s = logits(embeddings, 1.0, similarity)
    batch = embeddings[0].size(0)
    row_losses = []
    for i, items in enumerate(own_list(status, labels, batch)):
        pos = [(c, j) for c, j in items if c < num_pos]
        neg = [(c, j) for c, j in items if c >= num_pos]
        terms = [((s[i][jp] - s[i][jn]) - (float(labels[i][cp]) - float(labels[i][cn]))) ** 2
                 for cp, jp in pos for cn, jn in neg]
        if terms:
            row_losses.append(sum(terms) / len(terms))
    return sum(row_losses) / len(row_losses)
