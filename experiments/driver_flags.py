"""Flags every reproduction driver shares (dataset, seeds, results folder, epochs)."""

from absl import flags

flags.DEFINE_string("dataset", "ml-1m", "ml-1m, ml-100k or synthetic.")
flags.DEFINE_string("data_dir", None, "Raw MovieLens folder (default: $MLORA_TF_DATA_DIR or ./datasets).")
flags.DEFINE_integer("seeds", 1, "Runs per cell (training seeds base_seed .. base_seed + n - 1).")
flags.DEFINE_integer("base_seed", 2024, "Training seed of the first repetition.")
flags.DEFINE_integer("max_epochs", 100, "Epoch limit per run (per phase for MoE-MLoRA).")
flags.DEFINE_list("data_options", None, "Loader options key=value (synthetic sizes).")
flags.DEFINE_enum("loop", "fast", ["fast", "original"],
                  "Training loop of every run: fast (default) or original (TF 1.12 + DeepCTR step for step); "
                  "original-loop results go to a separate '<tag>-original-loop' folder.")
flags.DEFINE_boolean("plot", True, "Draw the PNG chart (needs matplotlib, the `plots` extra).")
