"""The papers' published numbers (`experiments/paper_numbers.py`): internally consistent
as printed (Δ = difference, Avg = mean of its row, Avg(Δ) by the papers' rules, shared
rows equal), keyed as the drivers look them up, and, where the project's reference
notes are on this machine, equal to their table cells."""

import re
import sys
from pathlib import Path
from statistics import mean

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import paper_numbers as pn  # noqa: E402

TOL = 0.011  # two printed decimals: a difference or mean of rounded numbers may be off by 0.01

# Rows whose printed Avg is NOT the mean of the row (to rounding), as printed in the
# MLoRA paper's Table 4: the Taobao-20 rows average to 78.469 (Base) and 78.821
# (+MLoRA), the paper prints 78.27 and 78.62 (both 0.20 lower). Kept as printed.
KNOWN_AVG_EXCEPTIONS = {
    ("table4", "taobao-20", "base"): 78.469,
    ("table4", "taobao-20", "mlora"): 78.821,
}

MOE_BLOCKS = [("ml-1m", "gender"), ("ml-1m", "age"), ("ml-1m", "occupation"), ("taobao", "theme_10"),
              ("taobao", "theme_20")]


def _check_avg(table, key, row, values, printed):
    average = mean(values)
    expected = KNOWN_AVG_EXCEPTIONS.get((table, key, row))
    if expected is None:
        assert abs(average - printed) <= TOL, (table, key, row, average, printed)
    else:  # a known disagreement of the paper's own Avg: still exactly the recorded one
        assert average == pytest.approx(expected, abs=1e-9) and abs(average - printed) > TOL


# ------------------------------------------------------------ MLoRA Table 2 / 4
def test_table2_complete_and_deltas_are_differences():
    assert set(pn.PAPER_TABLE2) == {"movielens-gen", "taobao-10", "amazon-6"}
    for key, rows in pn.PAPER_TABLE2.items():
        assert tuple(rows) == pn.MLORA_BACKBONES
        assert tuple(pn.PAPER_TABLE2_DELTA[key]) == pn.MLORA_BACKBONES
        for backbone, row in rows.items():
            assert set(row) == {"base", "mlora"}
            assert abs((row["mlora"] - row["base"]) - pn.PAPER_TABLE2_DELTA[key][backbone]) <= TOL, (key, backbone)


def test_table2_avg_columns_are_row_means():
    for key, rows in pn.PAPER_TABLE2.items():
        for row in ("base", "mlora"):
            _check_avg("table2", key, row, [r[row] for r in rows.values()], pn.PAPER_TABLE2_AVG[key][row])
        _check_avg("table2", key, "delta", list(pn.PAPER_TABLE2_DELTA[key].values()), pn.PAPER_TABLE2_AVG[key]["delta"])


def test_table2_avg_delta_is_the_mean_over_datasets():
    assert tuple(pn.PAPER_TABLE2_AVG_DELTA) == pn.MLORA_BACKBONES
    for backbone, printed in pn.PAPER_TABLE2_AVG_DELTA.items():
        assert abs(mean(pn.PAPER_TABLE2_DELTA[k][backbone] for k in pn.PAPER_TABLE2) - printed) <= TOL, backbone
    assert abs(mean(pn.PAPER_TABLE2_AVG_DELTA.values()) - pn.PAPER_TABLE2_AVG_DELTA_MEAN) <= TOL
    assert abs(mean(a["delta"] for a in pn.PAPER_TABLE2_AVG.values()) - pn.PAPER_TABLE2_AVG_DELTA_MEAN) <= TOL


def test_table4_shares_taobao10_with_table2_and_avgs_are_row_means():
    assert pn.PAPER_TABLE4["taobao-10"] == pn.PAPER_TABLE2["taobao-10"]
    for row in ("base", "mlora"):
        assert pn.PAPER_TABLE4_AVG["taobao-10"][row] == pn.PAPER_TABLE2_AVG["taobao-10"][row]
    for key, rows in pn.PAPER_TABLE4.items():
        assert tuple(rows) == pn.MLORA_BACKBONES
        for row in ("base", "mlora"):
            _check_avg("table4", key, row, [r[row] for r in rows.values()], pn.PAPER_TABLE4_AVG[key][row])


def test_table3_wauc_equals_table2_taobao10():
    assert set(pn.PAPER_TABLE3) == {"mlp", "fibinet", "deepfm"} == set(pn.PAPER_TABLE3_LABELS)
    for backbone, rows in pn.PAPER_TABLE3.items():
        for row in ("base", "mlora"):
            assert len(rows[row]["domains"]) == 10
            assert rows[row]["wauc"] == pn.PAPER_TABLE2["taobao-10"][backbone][row]


def test_table1_matches_the_registry_statistics():
    from mlora_tf.data.registry import get_spec

    ours = {"amazon-6": ("amazon", "category_6"), "taobao-10": ("taobao", "theme_10"),
            "taobao-20": ("taobao", "theme_20"), "taobao-30": ("taobao", "theme_30"),
            "movielens-gen": ("ml-1m", "gender")}
    assert set(pn.PAPER_TABLE1) == set(ours)
    for key, (dataset, split) in ours.items():
        expected = get_spec(dataset).expected_stats[split]
        paper = pn.PAPER_TABLE1[key]
        assert {k: paper["validation" if k == "val" else k] for k in expected} == dict(expected), key


def test_table5_and_figure4():
    assert list(pn.PAPER_TABLE5) == [(256, 128, 64), (512, 256, 128), (1024, 512, 256), (1024, 1024, 512),
                                     (2048, 1024, 512)]
    assert pn.PAPER_TABLE5_DATASET == "amazon-6"
    assert pn.PAPER_FIGURE4_OPTIMA == {"mlp": 128, "deepfm": 64, "fibinet": 32}
    assert "plot only" in pn.PAPER_FIGURE4_NOTE and "plot only" in pn.PAPER_MOE_FIGURE2_NOTE


def test_paper_dataset_keys():
    assert pn.paper_dataset_key("ml-1m", "gender") == "movielens-gen"
    assert pn.paper_dataset_key("ml-1m", "age") is None
    assert pn.paper_dataset_key("ml-100k", "gender") is None
    assert pn.paper_dataset_key("synthetic", "gender") is None
    assert pn.paper_dataset_key("taobao", "theme_10") == "taobao-10"
    assert pn.paper_dataset_key("taobao", "gender") == "taobao-10"  # the drivers' default split: the loader's
    assert pn.paper_dataset_key("taobao", "theme_20") == "taobao-20"
    assert pn.paper_dataset_key("taobao", "theme_30") == "taobao-30"
    assert pn.paper_dataset_key("taobao", "theme_10_time") is None
    assert pn.paper_dataset_key("amazon", "category_6") == "amazon-6"
    assert pn.paper_dataset_key("amazon", "category_13") is None
    assert pn.paper_wauc("taobao-20") is pn.PAPER_TABLE4["taobao-20"]
    assert pn.paper_wauc("movielens-gen") is pn.PAPER_TABLE2["movielens-gen"]
    assert pn.paper_wauc(None) == {}


# --------------------------------------------------------------- MoE-MLoRA Table 1
def test_moe_blocks_are_keyed_by_driver_dataset_and_split():
    from mlora_tf.data.registry import get_spec

    assert list(pn.PAPER_MOE_TABLE1) == MOE_BLOCKS
    for dataset, split in MOE_BLOCKS:
        assert split in get_spec(dataset).expected_stats  # a split our loader has
    for table in (pn.PAPER_MOE_TABLE1_DELTA, pn.PAPER_MOE_TABLE1_AVG, pn.PAPER_MOE_TABLE1_LABELS):
        assert list(table) == MOE_BLOCKS


def test_moe_deltas_and_avgs():
    for key, rows in pn.PAPER_MOE_TABLE1.items():
        assert tuple(rows) == pn.MOE_BACKBONES
        for backbone, row in rows.items():
            assert set(row) == {"base", "mlora", "moe"}
            assert abs((row["moe"] - row["mlora"]) - pn.PAPER_MOE_TABLE1_DELTA[key][backbone]) <= TOL, (key, backbone)
        for row in ("base", "mlora", "moe"):
            _check_avg("moe", key, row, [r[row] for r in rows.values()], pn.PAPER_MOE_TABLE1_AVG[key][row])
        _check_avg("moe", key, "delta", list(pn.PAPER_MOE_TABLE1_DELTA[key].values()),
                   pn.PAPER_MOE_TABLE1_AVG[key]["delta"])


def test_moe_avg_delta_averages_per_dataset_then_over_datasets():
    # The printed Avg(Δ) is mean(mean of the 3 Movielens splits, mean of the 2 Taobao
    # splits); averaging Movielens first and then the 3 "datasets" {Movielens, Taobao-10,
    # Taobao-20} does not give the printed row (WDL: 0.97, printed 0.73).
    delta = pn.PAPER_MOE_TABLE1_DELTA
    for backbone, printed in pn.PAPER_MOE_TABLE1_AVG_DELTA.items():
        movielens = mean(delta[("ml-1m", s)][backbone] for s in ("gender", "age", "occupation"))
        taobao = mean(delta[("taobao", s)][backbone] for s in ("theme_10", "theme_20"))
        assert abs(mean([movielens, taobao]) - printed) <= TOL, backbone
    assert abs(mean(pn.PAPER_MOE_TABLE1_AVG_DELTA.values()) - pn.PAPER_MOE_TABLE1_AVG_DELTA_MEAN) <= TOL


def test_the_two_papers_movielens_gender_rows_differ():
    assert pn.PAPER_TABLE2["movielens-gen"]["wdl"]["base"] == 80.17
    assert pn.PAPER_MOE_TABLE1[("ml-1m", "gender")]["wdl"]["base"] == 80.25


# ------------------------------------------------ against the reference notes
REFERENCE = Path(__file__).parents[3] / "shared/reference/paper-numbers.md"


def _number(cell: str):
    cell = cell.strip().replace(",", "").replace("−", "-")
    return int(cell) if re.fullmatch(r"[+-]?\d+", cell) else float(cell)


def _tables(text: str) -> dict:
    """`{(paper section, heading): [row cells]}` of every Markdown table (header and
    separator rows dropped)."""
    out, paper, heading, rows = {}, None, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            paper = line[3:].split()[0]  # "1." / "2." / "3."
        elif line.startswith("### "):
            heading = line[4:].split(":")[0].strip()
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if rows is None:
                rows = out.setdefault((paper, heading), [])
                continue  # the header
            if set("".join(cells)) <= set("-:"):
                continue
            rows.append(cells)
            continue
        rows = None
    return out


@pytest.mark.skipif(not REFERENCE.exists(), reason="the project's reference notes are not on this machine")
def test_every_number_equals_the_reference_table_cells():
    text = REFERENCE.read_text(encoding="utf-8")
    tables = _tables(text)
    names = {"Amazon-6": "amazon-6", "Taobao-10": "taobao-10", "Taobao-20": "taobao-20", "Taobao-30": "taobao-30",
             "Movielens-gen": "movielens-gen"}

    table1 = {names[r[0]]: dict(zip(("domains", "users", "items", "train", "validation", "test"),
                                    map(_number, r[1:]), strict=True)) for r in tables[("1.", "Table 1")]}
    assert table1 == pn.PAPER_TABLE1

    def wauc_table(rows):
        values, deltas, avgs, avg_delta = {}, {}, {}, None
        for r in rows:
            dataset, row, numbers = r[0], r[1], [_number(c) for c in r[2:]]
            *per_backbone, avg = numbers
            per = dict(zip(pn.MLORA_BACKBONES, per_backbone, strict=True))
            if row == "Avg(Δ)":
                avg_delta = (per, avg)
                continue
            key = names[dataset]
            field = {"Base": "base", "+MLoRA": "mlora", "Δ": "delta"}[row]
            avgs.setdefault(key, {})[field] = avg
            if field == "delta":
                deltas[key] = per
            else:
                for b, v in per.items():
                    values.setdefault(key, {}).setdefault(b, {})[field] = v
        return values, deltas, avgs, avg_delta

    values, deltas, avgs, (avg_delta, avg_delta_mean) = wauc_table(tables[("1.", "Table 2")])
    assert values == pn.PAPER_TABLE2 and deltas == pn.PAPER_TABLE2_DELTA and avgs == pn.PAPER_TABLE2_AVG
    assert avg_delta == pn.PAPER_TABLE2_AVG_DELTA and avg_delta_mean == pn.PAPER_TABLE2_AVG_DELTA_MEAN

    values, deltas, avgs, _ = wauc_table(tables[("1.", "Table 4")])
    assert values == {k: v for k, v in pn.PAPER_TABLE4.items() if k != "taobao-10"} and not deltas
    assert avgs == {k: v for k, v in pn.PAPER_TABLE4_AVG.items() if k != "taobao-10"}

    labels = {"MLP": ("mlp", "base"), "MLP+MLoRA": ("mlp", "mlora"), "FiBiNET": ("fibinet", "base"),
              "FiBiNET+MLoRA": ("fibinet", "mlora"), "DeepFM": ("deepfm", "base"), "DeepFM+MLoRA": ("deepfm", "mlora")}
    table3 = {}
    for r in tables[("1.", "Table 3")]:
        backbone, row = labels[r[0]]
        *domains, wauc = [_number(c) for c in r[1:]]
        table3.setdefault(backbone, {})[row] = {"domains": tuple(domains), "wauc": wauc}
    assert table3 == pn.PAPER_TABLE3

    header = next(line for line in text.splitlines() if line.startswith("| widths |"))
    widths = [tuple(int(u) for u in c.strip().split("-")) for c in header.strip().strip("|").split("|")[1:]]
    (wauc_row,) = tables[("1.", "Table 5")]
    assert dict(zip(widths, map(_number, wauc_row[1:]), strict=True)) == pn.PAPER_TABLE5

    optima = re.search(r"MLP at alpha (\d+), DeepFM at (\d+), FiBiNET at (\d+)", text)
    assert {"mlp": int(optima[1]), "deepfm": int(optima[2]), "fibinet": int(optima[3])} == pn.PAPER_FIGURE4_OPTIMA

    blocks = {label: key for key, label in pn.PAPER_MOE_TABLE1_LABELS.items()}
    moe, moe_delta, moe_avg, moe_avg_delta = {}, {}, {}, None
    for r in tables[("2.", "Table 1")]:
        *per_backbone, avg = [_number(c) for c in r[2:]]
        per = dict(zip(pn.MOE_BACKBONES, per_backbone, strict=True))
        if r[1] == "Avg(Δ)":
            moe_avg_delta = (per, avg)
            continue
        key = blocks[r[0]]
        field = {"Base": "base", "MLoRA": "mlora", "MoE-MLoRA": "moe", "Δ": "delta"}[r[1]]
        moe_avg.setdefault(key, {})[field] = avg
        if field == "delta":
            moe_delta[key] = per
        else:
            for b, v in per.items():
                moe.setdefault(key, {}).setdefault(b, {})[field] = v
    assert moe == pn.PAPER_MOE_TABLE1 and moe_delta == pn.PAPER_MOE_TABLE1_DELTA and moe_avg == pn.PAPER_MOE_TABLE1_AVG
    assert moe_avg_delta == (pn.PAPER_MOE_TABLE1_AVG_DELTA, pn.PAPER_MOE_TABLE1_AVG_DELTA_MEAN)
