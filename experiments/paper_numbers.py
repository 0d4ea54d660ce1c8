"""Published numbers the reproduction tables print beside ours.

Only numbers copied from the papers belong here, with their source; a dataset or
backbone missing from a dict is printed as "—" (unknown), never guessed.

PAPER_TABLE2[dataset key][backbone] = {"base": WAUC %, "mlora": WAUC %} from the MLoRA
paper's Table 2 (Yang et al., RecSys 2024, arXiv 2408.08913).
"""

# Filled from the paper where its text was available offline; see the README of
# experiments for how to add the rest.
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "movielens-gen": {},
    "taobao-10": {},
    "amazon-6": {},
}


def paper_dataset_key(dataset: str, split: str) -> str | None:
    """The paper's column for our dataset, or None where the paper has none."""
    if dataset == "ml-1m" and split == "gender":
        return "movielens-gen"
    return {"taobao": "taobao-10", "amazon": "amazon-6"}.get(dataset)

# PAPER_MOE_TABLE1[(dataset, split)][backbone] = {"mlora": WAUC %, "moe": WAUC %} from the
# MoE-MLoRA paper's Table 1 (Yaggel et al., arXiv 2506.07563). Not available offline;
# the only published figure found is the abstract's "+1.45 Weighed-AUC in Taobao-20".
PAPER_MOE_TABLE1: dict = {}

# M3oE (Zhang et al., SIGIR 2024, "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
# Recommendation Framework"), MovieLens-1M, mean of 5 seeds; copied from
# /work/shared/reference/m3oe.md §6.
#
# PAPER_M3OE_TABLE2[model] = {"label": the paper's row name, "d{d}t{t}": AUC × 10^-2,
# "overall_auc": AUC × 10^-2, "overall_logloss": logloss × 10^-2}, keyed by our
# multi-task registry names (`m2m` has no implementation here). Our 0-based keys:
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
