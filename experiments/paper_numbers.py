"""Published numbers the reproduction tables print beside ours.

Only numbers copied from the papers belong here, exactly as printed (the papers' own
rounding, their own Avg columns and Δ rows), with their source; a dataset or backbone
missing from a dict is printed as "—" (unknown), never guessed. Figures the papers give
only as plots (MLoRA Figure 4, MoE-MLoRA Figure 2) have no numbers: the tables print
"—" and the footnote "plot only" (with what the text says about them).

Sources (copied via the project's reference notes of the three papers):

* MLoRA: Yang et al., "MLoRA: Multi-Domain Low-Rank Adaptive Network for CTR
  Prediction", RecSys 2024, arXiv 2408.08913 -- Tables 1-5, Figure 4.
* MoE-MLoRA: Yaggel, German, Ben Siman Tov, arXiv 2506.07563 -- Table 1, Figure 2.
* M3oE: Zhang et al., SIGIR 2024 -- Tables 2 and 3 (MovieLens rows).

All AUC / WAUC values are in percent. Dataset keys of the MLoRA tables: `movielens-gen`,
`taobao-10`, `taobao-20`, `taobao-30`, `amazon-6` (`paper_dataset_key` maps our dataset
and domain split to them). The MoE-MLoRA table is keyed by our `(dataset, split)`:
`("ml-1m", "gender" | "age" | "occupation")`, `("taobao", "theme_10" | "theme_20")`.

The two papers' Movielens-gender rows differ for the same backbones (e.g. WDL Base
80.17 in MLoRA's Table 2, 80.25 in MoE-MLoRA's Table 1): each table prints the numbers
of the paper it reproduces.
"""

from __future__ import annotations

# The MLoRA paper's backbones, in its column order.
MLORA_BACKBONES = ("mlp", "star", "wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
# The MoE-MLoRA paper's eight backbones, in its column order.
MOE_BACKBONES = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")


def _rows(base, mlora, backbones=MLORA_BACKBONES) -> dict[str, dict[str, float]]:
    return {b: {"base": x, "mlora": y} for b, x, y in zip(backbones, base, mlora, strict=True)}


# ------------------------------------------------------------------ MLoRA Table 1
# PAPER_TABLE1[dataset key] = the paper's dataset statistics (users / items for
# Movielens are max id + 1, as the original's vocabularies).
PAPER_TABLE1: dict[str, dict[str, int]] = {
    "amazon-6": {"domains": 6, "users": 445_789, "items": 172_653, "train": 9_968_333, "validation": 3_372_666,
                 "test": 3_585_877},
    "taobao-10": {"domains": 10, "users": 23_778, "items": 6_932, "train": 92_137, "validation": 37_645,
                  "test": 43_502},
    "taobao-20": {"domains": 20, "users": 58_190, "items": 16_319, "train": 243_592, "validation": 96_591,
                  "test": 106_500},
    "taobao-30": {"domains": 30, "users": 99_143, "items": 29_945, "train": 394_805, "validation": 151_369,
                  "test": 179_252},
    "movielens-gen": {"domains": 2, "users": 6_041, "items": 3_953, "train": 600_125, "validation": 200_042,
                      "test": 200_042},
}

# ------------------------------------------------------------------ MLoRA Table 2
# PAPER_TABLE2[dataset key][backbone] = {"base": WAUC %, "mlora": WAUC %}.
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "taobao-10": _rows(
        (72.92, 75.51, 73.12, 76.88, 75.56, 76.42, 72.07, 76.51, 75.01, 75.26),
        (74.53, 76.17, 73.51, 77.08, 75.83, 76.74, 72.14, 76.77, 75.66, 75.64),
    ),
    "amazon-6": _rows(
        (75.07, 77.26, 73.25, 65.07, 74.10, 74.03, 75.61, 74.93, 73.55, 74.64),
        (77.48, 77.28, 74.25, 67.41, 74.46, 75.18, 75.62, 75.27, 74.08, 74.83),
    ),
    "movielens-gen": _rows(
        (80.15, 80.18, 80.17, 80.57, 80.25, 80.26, 80.28, 80.47, 80.24, 80.26),
        (80.39, 80.36, 80.41, 80.59, 80.41, 80.39, 80.42, 80.74, 80.46, 80.44),
    ),
}

# PAPER_TABLE2_DELTA[dataset key][backbone] = the paper's printed Δ (+MLoRA − Base).
PAPER_TABLE2_DELTA: dict[str, dict[str, float]] = {
    "taobao-10": dict(zip(MLORA_BACKBONES, (1.61, 0.66, 0.39, 0.20, 0.27, 0.32, 0.07, 0.26, 0.65, 0.38), strict=True)),
    "amazon-6": dict(zip(MLORA_BACKBONES, (2.41, 0.02, 1.00, 2.34, 0.36, 1.15, 0.01, 0.34, 0.53, 0.19), strict=True)),
    "movielens-gen": dict(zip(MLORA_BACKBONES, (0.24, 0.18, 0.24, 0.02, 0.16, 0.13, 0.14, 0.27, 0.22, 0.18),
                              strict=True)),
}

# PAPER_TABLE2_AVG[dataset key] = the paper's Avg column of its Base, +MLoRA and Δ rows.
PAPER_TABLE2_AVG: dict[str, dict[str, float]] = {
    "taobao-10": {"base": 74.93, "mlora": 75.41, "delta": 0.48},
    "amazon-6": {"base": 73.75, "mlora": 74.58, "delta": 0.83},
    "movielens-gen": {"base": 80.28, "mlora": 80.46, "delta": 0.18},
}

# PAPER_TABLE2_AVG_DELTA[backbone] = the paper's "all / Avg(Δ)" row: the mean of the
# backbone's Δ over the three datasets; PAPER_TABLE2_AVG_DELTA_MEAN is that row's Avg.
PAPER_TABLE2_AVG_DELTA: dict[str, float] = dict(
    zip(MLORA_BACKBONES, (1.42, 0.29, 0.54, 0.85, 0.26, 0.53, 0.07, 0.29, 0.47, 0.25), strict=True)
)
PAPER_TABLE2_AVG_DELTA_MEAN: float = 0.50

# ------------------------------------------------------------------ MLoRA Table 3
# PAPER_TABLE3[backbone][row] = {"domains": AUC % of Taobao-10 domains 0..9, "wauc": WAUC %},
# row "base" (the backbone alone) or "mlora" (backbone + MLoRA). Domain k is the k-th
# theme of the Taobao-10 split (our loader's domain id k).
PAPER_TABLE3: dict[str, dict[str, dict]] = {
    "mlp": {
        "base": {"domains": (69.09, 58.23, 68.17, 77.29, 79.70, 74.21, 56.56, 75.47, 64.43, 70.21), "wauc": 72.92},
        "mlora": {"domains": (70.40, 62.24, 69.03, 79.11, 80.87, 74.47, 60.12, 76.61, 65.90, 72.46), "wauc": 74.53},
    },
    "fibinet": {
        "base": {"domains": (71.90, 63.13, 70.43, 79.28, 81.19, 78.11, 68.04, 82.54, 65.42, 76.08), "wauc": 76.51},
        "mlora": {"domains": (72.56, 63.70, 70.65, 79.35, 81.20, 78.58, 68.58, 83.25, 65.55, 76.08), "wauc": 76.77},
    },
    "deepfm": {
        "base": {"domains": (72.44, 64.27, 66.60, 76.46, 81.36, 76.56, 66.85, 83.53, 67.34, 72.69), "wauc": 75.01},
        "mlora": {"domains": (72.81, 64.41, 67.21, 77.80, 81.65, 77.41, 67.11, 83.65, 67.58, 72.79), "wauc": 75.66},
    },
}
PAPER_TABLE3_LABELS = {"mlp": "MLP", "fibinet": "FiBiNET", "deepfm": "DeepFM"}

# ------------------------------------------------------------------ MLoRA Table 4
# PAPER_TABLE4[dataset key][backbone] = {"base", "mlora"} WAUC % on Taobao-10/20/30; the
# paper's Taobao-10 rows are those of Table 2. Table 4 prints no Δ row.
PAPER_TABLE4: dict[str, dict[str, dict[str, float]]] = {
    "taobao-10": PAPER_TABLE2["taobao-10"],
    "taobao-20": _rows(
        (77.05, 77.89, 77.33, 78.55, 77.50, 79.13, 79.32, 79.27, 79.52, 79.13),
        (77.54, 78.66, 77.83, 78.84, 78.09, 79.21, 79.49, 79.29, 79.81, 79.45),
    ),
    "taobao-30": _rows(
        (76.96, 77.03, 77.74, 78.09, 78.34, 78.66, 75.81, 76.38, 76.13, 79.27),
        (77.15, 78.29, 77.90, 78.32, 78.36, 78.72, 76.46, 76.59, 76.25, 79.29),
    ),
}
# PAPER_TABLE4_AVG[dataset key] = the Avg column of Table 4's Base and +MLoRA rows.
PAPER_TABLE4_AVG: dict[str, dict[str, float]] = {
    "taobao-10": {"base": PAPER_TABLE2_AVG["taobao-10"]["base"], "mlora": PAPER_TABLE2_AVG["taobao-10"]["mlora"]},
    "taobao-20": {"base": 78.27, "mlora": 78.62},
    "taobao-30": {"base": 77.44, "mlora": 77.73},
}

# ------------------------------------------------------------------ MLoRA Table 5
# PAPER_TABLE5[hidden widths] = MLP+MLoRA WAUC % on Amazon-6.
PAPER_TABLE5_DATASET = "amazon-6"
PAPER_TABLE5: dict[tuple[int, ...], float] = {
    (256, 128, 64): 75.39,
    (512, 256, 128): 75.82,
    (1024, 512, 256): 75.99,
    (1024, 1024, 512): 76.68,
    (2048, 1024, 512): 76.93,
}

# ------------------------------------------------------------------ MLoRA Figure 4
# The temperature (alpha) ablation on Taobao-10 is a plot only: no numbers. The text
# gives the best alpha per backbone.
PAPER_FIGURE4_OPTIMA: dict[str, int] = {"mlp": 128, "deepfm": 64, "fibinet": 32}
PAPER_FIGURE4_NOTE = "paper: plot only (optima: MLP α=128, DeepFM 64, FiBiNET 32)"


def paper_dataset_key(dataset: str, split: str) -> str | None:
    """The MLoRA paper's dataset key for our dataset and domain split, or None where the
    paper has none (e.g. MovieLens age / occupation, Taobao's time variant, ml-100k)."""
    if dataset == "ml-1m" and split == "gender":
        return "movielens-gen"
    # "gender" (the drivers' default --split) means the loader's default split for a
    # dataset without one (`mlora_tf.data.registry.resolve_domain_split`).
    if dataset == "taobao":
        split = "theme_10" if split in ("gender", None) else split
        return {"theme_10": "taobao-10", "theme_20": "taobao-20", "theme_30": "taobao-30"}.get(split)
    if dataset == "amazon":
        return "amazon-6" if split in ("gender", None, "category_6") else None
    return None


def paper_wauc(paper_key: str | None) -> dict[str, dict[str, float]]:
    """`{backbone: {"base", "mlora"}}` of the MLoRA paper for a dataset key: Table 2's
    rows, or Table 4's for Taobao-20/30; {} where the paper has none."""
    if paper_key is None:
        return {}
    return PAPER_TABLE2.get(paper_key) or PAPER_TABLE4.get(paper_key, {})


# -------------------------------------------------------------- MoE-MLoRA Table 1
def _moe_rows(base, mlora, moe) -> dict[str, dict[str, float]]:
    return {b: {"base": x, "mlora": y, "moe": z} for b, x, y, z in zip(MOE_BACKBONES, base, mlora, moe, strict=True)}


# PAPER_MOE_TABLE1[(dataset, split)][backbone] = {"base", "mlora", "moe"} WAUC %, one
# expert per domain.
PAPER_MOE_TABLE1: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("ml-1m", "gender"): _moe_rows(
        (80.25, 80.57, 79.91, 79.95, 80.51, 80.71, 80.22, 80.30),
        (80.20, 80.57, 80.27, 80.51, 80.37, 80.68, 80.38, 80.38),
        (80.25, 80.44, 80.08, 80.21, 80.15, 80.72, 80.22, 80.21),
    ),
    ("ml-1m", "age"): _moe_rows(
        (80.46, 80.70, 80.17, 80.67, 80.74, 80.75, 80.42, 80.56),
        (80.51, 80.75, 80.36, 80.53, 80.77, 80.86, 80.60, 80.61),
        (80.39, 80.63, 80.54, 80.27, 80.48, 80.69, 80.58, 80.64),
    ),
    ("ml-1m", "occupation"): _moe_rows(
        (80.53, 80.49, 80.59, 80.40, 80.60, 80.53, 80.43, 80.62),
        (80.46, 80.39, 80.38, 80.44, 80.25, 80.62, 80.57, 80.57),
        (80.54, 80.55, 80.59, 80.60, 80.57, 80.59, 80.59, 80.56),
    ),
    ("taobao", "theme_10"): _moe_rows(
        (72.42, 76.21, 74.19, 76.92, 72.02, 75.83, 75.19, 74.71),
        (72.15, 76.45, 72.09, 75.88, 72.18, 76.82, 74.70, 75.35),
        (73.22, 77.19, 74.89, 76.67, 74.47, 76.91, 77.16, 76.57),
    ),
    ("taobao", "theme_20"): _moe_rows(
        (74.74, 77.40, 78.16, 78.79, 76.54, 78.99, 77.12, 77.16),
        (75.16, 78.06, 79.09, 78.17, 74.02, 79.22, 76.38, 76.87),
        (77.00, 78.22, 79.66, 80.71, 76.35, 79.75, 78.93, 77.92),
    ),
}
# The paper's row names of each block.
PAPER_MOE_TABLE1_LABELS: dict[tuple[str, str], str] = {
    ("ml-1m", "gender"): "Movielens-gender",
    ("ml-1m", "age"): "Movielens-age",
    ("ml-1m", "occupation"): "Movielens-occupation",
    ("taobao", "theme_10"): "Taobao-theme-10",
    ("taobao", "theme_20"): "Taobao-theme-20",
}

# PAPER_MOE_TABLE1_DELTA[(dataset, split)][backbone] = the printed Δ = MoE-MLoRA − MLoRA.
PAPER_MOE_TABLE1_DELTA: dict[tuple[str, str], dict[str, float]] = {
    ("ml-1m", "gender"): dict(zip(MOE_BACKBONES, (0.05, -0.13, -0.19, -0.30, -0.23, 0.04, -0.16, -0.17), strict=True)),
    ("ml-1m", "age"): dict(zip(MOE_BACKBONES, (-0.13, -0.12, 0.17, -0.26, -0.29, -0.17, -0.02, 0.03), strict=True)),
    ("ml-1m", "occupation"): dict(zip(MOE_BACKBONES, (0.08, 0.16, 0.21, 0.16, 0.32, -0.04, 0.02, -0.01),
                                      strict=True)),
    ("taobao", "theme_10"): dict(zip(MOE_BACKBONES, (1.07, 0.74, 2.80, 0.79, 2.28, 0.08, 2.46, 1.22), strict=True)),
    ("taobao", "theme_20"): dict(zip(MOE_BACKBONES, (1.84, 0.16, 0.57, 2.54, 2.33, 0.54, 2.55, 1.04), strict=True)),
}

# PAPER_MOE_TABLE1_AVG[(dataset, split)] = the Avg column of each block's four rows.
PAPER_MOE_TABLE1_AVG: dict[tuple[str, str], dict[str, float]] = {
    ("ml-1m", "gender"): {"base": 80.30, "mlora": 80.42, "moe": 80.28, "delta": -0.14},
    ("ml-1m", "age"): {"base": 80.56, "mlora": 80.62, "moe": 80.53, "delta": -0.10},
    ("ml-1m", "occupation"): {"base": 80.52, "mlora": 80.46, "moe": 80.58, "delta": 0.11},
    ("taobao", "theme_10"): {"base": 74.69, "mlora": 74.45, "moe": 75.89, "delta": 1.43},
    ("taobao", "theme_20"): {"base": 77.36, "mlora": 77.12, "moe": 78.57, "delta": 1.45},
}

# PAPER_MOE_TABLE1_AVG_DELTA[backbone] = the "all / Avg(Δ)" row; the printed values are
# the mean over the two datasets of the per-dataset mean Δ (Movielens: its three splits;
# Taobao: its two splits). PAPER_MOE_TABLE1_AVG_DELTA_MEAN is that row's Avg.
PAPER_MOE_TABLE1_AVG_DELTA: dict[str, float] = dict(
    zip(MOE_BACKBONES, (0.73, 0.21, 0.88, 0.77, 1.12, 0.13, 1.22, 0.54), strict=True)
)
PAPER_MOE_TABLE1_AVG_DELTA_MEAN: float = 0.70

# MoE-MLoRA Figure 2 (2, 4, 6, 8 experts, Movielens-gender) is a plot only.
PAPER_MOE_FIGURE2_NOTE = (
    "paper: plot only (its text: DeepFM and AutoInt peak at 6 experts; NFM gains from more experts; "
    "most models show no clear trend)"
)

# M3oE (Zhang et al., SIGIR 2024, "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
# Recommendation Framework"), MovieLens-1M, mean of 5 seeds; copied from
# /work/shared/reference/m3oe.md §6.
#
# PAPER_M3OE_TABLE2[model] = {"label": the paper's row name, "d{d}t{t}": AUC × 10^-2,
# "overall_auc": AUC × 10^-2, "overall_logloss": logloss × 10^-2}, keyed by our
# multi-task registry names. AdaTT and AdaTT-sp (`adatt`, `adatt_sp`) are rows of the
# paper's Table 2 too, but m3oe.md §6 does not copy their numbers: they are absent here
# until someone copies them from the paper (the driver prints "—" for them). Our 0-based keys:
# the paper's d1, d2, d3 (age groups {1, 18}, {25}, {35-56}) are d0, d1, d2; its t1
# (click) and t2 (like) are t0 and t1. "Overall" = the mean of the six pair AUCs.
# As printed: every row's overall AUC is the mean of its six pair AUCs to rounding
# except PLE-MDMT's (the six average 76.01, the paper prints 75.68).
PAPER_M3OE_TABLE2: dict[str, dict] = {
    "mlp": {"label": "MLP", "d0t0": 75.02, "d0t1": 76.40, "d1t0": 76.27, "d1t1": 78.66, "d2t0": 73.21,
            "d2t1": 74.15, "overall_auc": 75.62, "overall_logloss": 51.51},
    "star": {"label": "STAR", "d0t0": 75.89, "d0t1": 76.85, "d1t0": 76.87, "d1t1": 78.47, "d2t0": 73.68,
             "d2t1": 74.70, "overall_auc": 76.08, "overall_logloss": 51.11},
    "shared_bottom": {"label": "ShBot-MDMT", "d0t0": 75.94, "d0t1": 77.25, "d1t0": 76.56, "d1t1": 78.63,
                      "d2t0": 73.97, "d2t1": 75.21, "overall_auc": 76.26, "overall_logloss": 50.96},
    "mmoe": {"label": "MMoE-MDMT", "d0t0": 76.07, "d0t1": 77.27, "d1t0": 76.86, "d1t1": 78.67, "d2t0": 73.83,
             "d2t1": 75.41, "overall_auc": 76.35, "overall_logloss": 51.02},
    "ple": {"label": "PLE-MDMT", "d0t0": 75.83, "d0t1": 76.95, "d1t0": 76.04, "d1t1": 78.48, "d2t0": 73.67,
            "d2t1": 75.09, "overall_auc": 75.68, "overall_logloss": 51.90},
    "m2m": {"label": "M2M", "d0t0": 74.12, "d0t1": 75.35, "d1t0": 75.08, "d1t1": 77.13, "d2t0": 72.11,
            "d2t1": 73.78, "overall_auc": 74.59, "overall_logloss": 54.14},
    "m3oe": {"label": "M3oE", "d0t0": 76.61, "d0t1": 78.13, "d1t0": 77.51, "d1t1": 79.33, "d2t0": 74.47,
             "d2t1": 76.09, "overall_auc": 77.02, "overall_logloss": 50.71},
}

# The paper's RelaImpr of M3oE's overall AUC over its best baseline (MMoE-MDMT):
# (77.02 - 50) / (76.35 - 50) - 1 = 2.54%.
PAPER_M3OE_RELAIMPR: dict = {"baseline": "mmoe", "percent": 2.54}

# PAPER_M3OE_TABLE3[variant] = MovieLens-1M average (overall) AUC × 10^-2 of M3oE's
# ablations (paper Table 3), keyed by the driver's variant names.
PAPER_M3OE_TABLE3: dict[str, float] = {
    "wo_automl": 76.37,  # fusion weights fixed at 0.5
    "concat_modules": 76.89,
    "fully_gated": 76.92,
    "wo_domain": 76.89,
    "wo_task": 76.85,
    "wo_domain_task": 76.80,
    "full": 77.02,
}


def fmt_paper(value, signed: bool = False) -> str:
    """A paper's number as the tables print it ("—" where the paper has none)."""
    if value is None:
        return "—"
    return f"{value:+.2f}" if signed else f"{value:.2f}"
