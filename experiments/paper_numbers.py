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
