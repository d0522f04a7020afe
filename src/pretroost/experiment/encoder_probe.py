"""What the pretrained encoders know before finetuning: their frozen material vectors of a task's
compositions, and how much of the target a linear model reads off them (the report's linear probe).
"""

from __future__ import annotations

import numpy as np

from pretroost.data.matbench import get_task, load_task
from pretroost.hub import load
from pretroost.models.roost import RoostConfig, RoostEncoder
from pretroost.predict import Predictor

__all__ = ["encoder_embeddings", "linear_probe"]


def encoder_embeddings(
    encoders: dict[str, str | None], task: str, *, max_points: int = 3000, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frozen material vectors of (up to ``max_points`` of) one task's compositions.

    ``encoders`` maps a label to a pretrained artefact folder, or None for a randomly initialised
    (untrained, "scratch") encoder. Returns the targets (n,) and label -> (n, d) embeddings.
    """
    import torch

    df = load_task(task)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(df), min(max_points, len(df)), replace=False))
    formulas = df["formula"].iloc[idx].tolist()
    out = {}
    for label, folder in encoders.items():
        torch.manual_seed(seed)
        model = Predictor(RoostEncoder(RoostConfig())) if folder is None else load(folder)
        out[label] = model.embed(formulas, errors="raise", progress=False)
    return df["target"].to_numpy()[idx], out


def linear_probe(
    y: np.ndarray, emb: dict[str, np.ndarray], task: str, *, seed: int = 0
) -> dict[str, float]:
    """How much of the target a linear model reads off each frozen encoder: 5-fold CV R² of a
    ridge regression (regression tasks) or ROC-AUC of a logistic regression (classification), on
    standardised material vectors. Higher = the pretrained features already carry the target."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if get_task(task).task_type == "classification":
        model = LogisticRegression(max_iter=2000)
        cv, scoring = StratifiedKFold(5, shuffle=True, random_state=seed), "roc_auc"
    else:
        model, scoring = RidgeCV(alphas=np.logspace(-3, 5, 17)), "r2"
        cv = KFold(5, shuffle=True, random_state=seed)
    pipe = make_pipeline(StandardScaler(), model)
    return {
        k: float(cross_val_score(pipe, X, y, cv=cv, scoring=scoring).mean()) for k, X in emb.items()
    }
