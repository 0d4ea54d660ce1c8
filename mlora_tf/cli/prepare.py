"""`mlora-prepare`: raw files -> the canonical per-domain train/val/test splits in OUT_DIR.

The prepared folder holds the cache file the loader writes (`<loader>-<split>-<key>.npz`,
plus `<...>.extras.npz` for Taobao embeddings or extra CSV columns) and `prepared.json`.
Train from it with `mlora-train --dataset=NAME --data_dir=OUT_DIR` (no raw files needed),
or keep the raw files and pass `--data_dir=RAW --cache_dir=OUT_DIR`.

With `--format=tfrecord` or `--format=parquet` it writes shards instead (no `.npz`, no
`prepared.json`): `OUT_DIR/<split>/domain-<id>/part-<n>.<format>`, at most
`--shard_rows` rows per file (default 1,000,000), and `OUT_DIR/manifest.json` (schema,
vocabularies, domain names, rows per split and domain, a sha256 per file), written last.
Stream it with `mlora_tf.data.shards.open_shards(OUT_DIR)`.

Examples:
  mlora-prepare --dataset=ml-1m --raw_dir=datasets/ml-1m --out_dir=prepared/ml-1m-gender
  mlora-prepare --dataset=amazon --raw_dir=raw/amazon --out_dir=prepared/amazon6
  mlora-prepare --dataset=taobao --domains=20 --raw_dir=raw/taobao --out_dir=prepared/taobao20
  mlora-prepare --dataset=taobao --domains=10 --time_split --raw_dir=raw/taobao --out_dir=prepared/t10t
  mlora-prepare --dataset=csv --path=clicks.csv --domain_column=site --label_column=click \\
      --features=user,item,device --numeric_features=price --out_dir=prepared/clicks
  mlora-prepare --dataset=csv --path=clicks.csv --domain_column=site --label_column=click,like \\
      --features=user,item,device --out_dir=prepared/clicks_mt      # multi-task (--task_set=click,like)
  mlora-prepare --dataset=ml-1m --raw_dir=datasets/ml-1m --format=parquet --shard_rows=200000 \\
      --out_dir=prepared/ml-1m-shards                                 # shards, streamed by tf.data

It prints the statistics it got beside the expected ones (paper Table 1 /
datasets.md) and shows progress on long steps.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags, logging

from mlora_tf.cli import tf_log
from mlora_tf.config import parse_options
from mlora_tf.runtime import configure_threads

# Own flag set, so that this program and `mlora-train` can share a process (tests) even
# though both define --dataset, --seed, ...; absl's own flags stay on `flags.FLAGS`.
FLAGS = flags.FlagValues()

flags.DEFINE_string("dataset", None, "Dataset to prepare: ml-1m, ml-100k, amazon, taobao, csv.", flag_values=FLAGS)
flags.DEFINE_string("raw_dir", None, "Folder with the raw files (not used by --dataset=csv, which takes --path).", flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "Folder to write the prepared splits into (created).", flag_values=FLAGS)
flags.DEFINE_string("domain_split", None, "Domain split: MovieLens gender|age|occupation; Amazon category_6|category_13; Taobao theme_N[_time].", flag_values=FLAGS)
flags.DEFINE_integer("domains", None, "Taobao: number of themes (10, 20, 30, ...): the first N themes of the click log.", flag_values=FLAGS)
flags.DEFINE_boolean("time_split", False, "Taobao: the time-based variant (train = the earliest 60 percent of each theme's positives).", flag_values=FLAGS)
flags.DEFINE_integer("seed", 123, "Seed of the split, of the negative sampling and of the rho draws (123 as the original).", flag_values=FLAGS)
flags.DEFINE_list("fractions", None, "train,val,test fractions (default 0.6,0.2,0.2).", flag_values=FLAGS)
flags.DEFINE_list("data_options", None, "Other loader options as key=value.", flag_values=FLAGS)
flags.DEFINE_string("format", "npz", "Output: npz (default: one cache file + prepared.json, loaded whole by "
                    "mlora-train --data_dir), tfrecord or parquet (instead of those: shards, one folder per split and "
                    "domain, OUT_DIR/<split>/domain-<id>/part-<n>.<format>, plus manifest.json, streamed with tf.data "
                    "by mlora_tf.data.shards.open_shards).", flag_values=FLAGS)
flags.DEFINE_integer("shard_rows", None, "--format=tfrecord|parquet: the most rows per shard file (a positive integer; "
                     "default 1,000,000).", flag_values=FLAGS)
# Generic CSV / parquet.
flags.DEFINE_string("path", None, "csv: the .csv or .parquet file.", flag_values=FLAGS)
flags.DEFINE_string("domain_column", None, "csv: the column that defines the domains (any type).", flag_values=FLAGS)
flags.DEFINE_string("label_column", None, "csv: the 0/1 label column; several comma-separated ones (click,like) make a multi-task dataset for mlora-train --task_set.", flag_values=FLAGS)
flags.DEFINE_list("features", None, "csv: categorical id columns; the first two become uid and pid, every further one is a model feature of its own. Without it the schema is inferred (every other column; text and integer columns categorical, float columns numeric) and printed as these flags.", flag_values=FLAGS)
flags.DEFINE_list("numeric_features", None, "csv: numeric columns, bucketised into quantile buckets; each is a model feature of its own.", flag_values=FLAGS)
flags.DEFINE_integer("n_buckets", None, "csv: quantile buckets per numeric column (default 10).", flag_values=FLAGS)
flags.DEFINE_string("split_column", None, "csv: a column with values train/val/test that gives the split.", flag_values=FLAGS)
flags.DEFINE_string("delimiter", None, "csv: field delimiter (default ',').", flag_values=FLAGS)
flags.DEFINE_list("hash_buckets", None, "csv: feature:N,... (e.g. user:1000000,item:200000; a column name or uid/pid): "
                  "hash those categorical features' raw values (text or integers) into N buckets instead of building "
                  "their vocabulary (no vocabulary pass, no OOV row; the export hashes the same way). Not with "
                  "--format=tfrecord|parquet, nor for the domain column.", flag_values=FLAGS)
tf_log.define_flag(FLAGS)


class TextProgress:
    """A one-line textual progress bar on stderr (10 %-step lines when not a terminal)."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last: dict[str, int] = {}
        self._start: dict[str, float] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        total = max(int(total), 1)
        done = min(int(done), total)
        if done == 0 or label not in self._start:
            self._start[label] = time.time()
            self._last[label] = -1
        percent = (100 * done) // total
        step = percent if self.tty else (percent // 10) * 10
        if step == self._last[label]:
            return
        self._last[label] = step
        filled = (self.width * done) // total
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{label} [{bar}] {percent:3d}% {done:,}/{total:,} {time.time() - self._start[label]:.1f}s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _request() -> tuple[str, str | None, dict]:
    """(dataset, domain_split, options) from the flags."""
    name = FLAGS.dataset
    if not name:
        raise ValueError("--dataset is required (ml-1m, ml-100k, amazon, taobao, csv). Received: nothing")
    options = parse_options(FLAGS.data_options)
    domain_split = FLAGS.domain_split
    if FLAGS.domains is not None or FLAGS.time_split:
        if name != "taobao":
            raise ValueError(
                f"--domains and --time_split apply to --dataset=taobao only. Received: --dataset={name}"
            )
        if domain_split is not None:
            raise ValueError("Give either --domain_split or --domains/--time_split, not both. "
                             f"Received: --domain_split={domain_split}")
        domain_split = f"theme_{FLAGS.domains if FLAGS.domains is not None else 10}"
        if FLAGS.time_split:
            domain_split += "_time"
    if FLAGS.fractions is not None:
        try:
            options["fractions"] = tuple(float(f) for f in FLAGS.fractions)
        except ValueError:
            raise ValueError(f"--fractions must be three numbers. Received: {FLAGS.fractions}") from None
    csv_flags = {
        "path": FLAGS.path, "domain_column": FLAGS.domain_column, "label_column": FLAGS.label_column,
        "features": FLAGS.features, "numeric_features": FLAGS.numeric_features,
        "n_buckets": FLAGS.n_buckets, "split_column": FLAGS.split_column, "delimiter": FLAGS.delimiter,
        "hash_buckets": FLAGS.hash_buckets,
    }
    given = {k: v for k, v in csv_flags.items() if v is not None}
    if given and name != "csv":
        raise ValueError(f"--{sorted(given)[0]} applies to --dataset=csv only. Received: --dataset={name}")
    if name == "csv":
        if given.get("path"):
            given["path"] = os.path.abspath(given["path"])
        for key in ("features", "numeric_features"):
            if key in given:
                given[key] = [c.strip() for c in given[key] if c.strip()]
        if "hash_buckets" in given:
            from mlora_tf.data.hashing import parse_hash_buckets

            given["hash_buckets"] = parse_hash_buckets(given["hash_buckets"], "--hash_buckets")
        options.update(given)
    return name, domain_split, options


FORMATS: tuple[str, ...] = ("npz", "tfrecord", "parquet")
SHARD_FORMATS: tuple[str, ...] = ("tfrecord", "parquet")


def check_output_flags() -> None:
    """--format and --shard_rows, before any work."""
    if FLAGS.format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}. Received: --format={FLAGS.format}")
    if FLAGS.shard_rows is not None:
        if FLAGS.format not in SHARD_FORMATS:
            raise ValueError(f"--shard_rows applies to --format=tfrecord|parquet only. "
                             f"Received: --shard_rows={FLAGS.shard_rows} --format={FLAGS.format}")
        if FLAGS.shard_rows < 1:
            raise ValueError(f"--shard_rows must be a positive integer. Received: --shard_rows={FLAGS.shard_rows}")
    if FLAGS.hash_buckets and FLAGS.format in SHARD_FORMATS:
        raise ValueError(f"--hash_buckets applies to --format=npz only (shards do not record the hashing yet). "
                         f"Received: --hash_buckets={','.join(FLAGS.hash_buckets)} --format={FLAGS.format}")


def check_request() -> tuple[str, str | None, dict]:
    """Every flag and input path, before any work: the input files first (so a missing
    one is what the user hears about), then the flags; returns `_request()`."""
    from mlora_tf.data import prepared, shards
    from mlora_tf.data.registry import get_spec

    if FLAGS.path and not os.path.isfile(FLAGS.path):
        what = "is a folder, not a file" if os.path.isdir(FLAGS.path) else "not found"
        raise FileNotFoundError(f"Data file {what}: {FLAGS.path}. Received: --path={FLAGS.path}")
    if FLAGS.raw_dir and not os.path.isdir(FLAGS.raw_dir):
        raise FileNotFoundError(f"Raw folder not found: {FLAGS.raw_dir}. Received: --raw_dir={FLAGS.raw_dir}")
    name, domain_split, options = _request()
    check_output_flags()
    get_spec(name)  # an unknown dataset: its error, listing the known ones
    if name == "synthetic":
        raise ValueError("'synthetic' is generated in memory in well under a second; there is nothing "
                         "to prepare. Received: --dataset=synthetic")
    if name != "csv" and not FLAGS.raw_dir:
        raise ValueError(f"--raw_dir is required for --dataset={name}. Received: nothing")
    if prepared.is_prepared_dir(FLAGS.raw_dir) or shards.is_shard_dir(FLAGS.raw_dir):
        raise ValueError(f"{FLAGS.raw_dir} is a prepared folder, not raw files. Received: --raw_dir={FLAGS.raw_dir}")
    if not FLAGS.out_dir:
        raise ValueError("--out_dir is required. Received: nothing")
    if os.path.isfile(FLAGS.out_dir):
        raise ValueError(f"--out_dir is a file, not a folder. Received: --out_dir={FLAGS.out_dir}")
    if FLAGS.format in SHARD_FORMATS and prepared.is_prepared_dir(FLAGS.out_dir):
        raise ValueError(f"--out_dir already holds an npz prepared folder (prepared.json); write the shards into "
                         f"another folder or remove it. Received: --out_dir={FLAGS.out_dir} --format={FLAGS.format}")
    if FLAGS.format == "npz" and shards.is_shard_dir(FLAGS.out_dir):
        raise ValueError(f"--out_dir already holds shards (manifest.json); prepare the npz folder elsewhere or remove "
                         f"it. Received: --out_dir={FLAGS.out_dir} --format=npz")
    if name == "csv":
        if not options.get("path"):
            raise ValueError("--dataset=csv needs --path=FILE.csv (or .parquet). Received: nothing")
        for flag in ("domain_column", "label_column"):
            if not options.get(flag):
                raise ValueError(f"--dataset=csv needs --{flag}=COLUMN. Received: nothing")
        if options.get("n_buckets") is not None and options["n_buckets"] < 2:
            raise ValueError(f"--n_buckets must be >= 2. Received: --n_buckets={options['n_buckets']}")
        if options.get("delimiter") is not None and len(options["delimiter"]) != 1:
            raise ValueError(f"--delimiter must be one character. Received: --delimiter={options['delimiter']!r}")
    if "fractions" in options:
        from mlora_tf.data import split as split_lib

        split_lib.check_fractions(options["fractions"])
    return name, domain_split, options


def infer_csv_features(options: dict) -> list[str]:
    """Without --features: the schema inferred from the file, put into `options`; the
    lines to print (the flags that give it, to copy and edit)."""
    from mlora_tf.data import csv_loader

    schema = csv_loader.infer_features(
        options["path"], domain_column=options["domain_column"], label_column=options["label_column"],
        split_column=options.get("split_column"), numeric_features=options.get("numeric_features"),
        delimiter=options.get("delimiter") or ",",
    )
    options["features"] = schema["features"]
    options["numeric_features"] = schema["numeric_features"]
    import shlex

    given = [a for a in sys.argv[1:] if not a.startswith(("--features=", "--numeric_features="))]
    lines = [
        f"No --features: inferred from {options['path']} (uid = {schema['features'][0]!r}, "
        f"pid = {schema['features'][1]!r}; text and integer columns categorical, float columns numeric):",
        f"  {csv_loader.feature_flags(schema)}",
    ]
    for column, reason in schema["skipped"].items():
        lines.append(f"  left out: column {column!r} {reason}")
    if given and tf_log.running_program() is not None:
        lines.append("  as one command: mlora-prepare " + " ".join(shlex.quote(a) for a in given)
                     + " " + csv_loader.feature_flags(schema))
    return lines


def format_statistics(stats: dict, expected: dict | None) -> str:
    """The got-vs-expected table `mlora-prepare` prints."""
    rows = ["domains", "users", "items", "train", "val", "test", "total"]
    expected = dict(expected or {})
    if expected and all(k in expected for k in ("train", "val", "test")):
        expected["total"] = expected["train"] + expected["val"] + expected["test"]
    lines = [f"{'':<12}{'got':>18}{'expected':>18}", "-" * 48]
    for key in rows:
        want = expected.get(key)
        lines.append(f"{key:<12}{stats[key]:>18,}{(f'{want:,}' if want is not None else 'n/a'):>18}")
    got_shares = "/".join(f"{100 * stats['shares'][s]:.1f}" for s in ("train", "val", "test"))
    want_shares = "n/a"
    if expected.get("total"):
        want_shares = "/".join(f"{100 * expected[s] / expected['total']:.1f}" for s in ("train", "val", "test"))
    lines.append(f"{'split %':<12}{got_shares:>18}{want_shares:>18}")
    if stats.get("positive_rate") is not None:
        lines.append(f"{'pos. rate':<12}{stats['positive_rate']:>18.3f}")
    return "\n".join(lines)


def prepare(name: str, domain_split: str | None, options: dict, raw_dir: str | None, out_dir: str,
            seed: int = 123, file_format: str = "npz", shard_rows: int | None = None):
    """Loads `name` and writes the prepared folder `out_dir`.

    `file_format="npz"`: the loader's cache file in `out_dir` and `prepared.json`.
    `"tfrecord"` / `"parquet"`: instead, shards of at most `shard_rows` rows (default
    `shards.DEFAULT_SHARD_ROWS`) and `manifest.json` (`mlora_tf.data.shards`).

    Returns:
        `(dataset, statistics, expected, manifest_path)`.
    """
    from mlora_tf.data import prepared
    from mlora_tf.data.registry import get_spec, load_dataset, resolve_domain_split

    if file_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}. Received: --format={file_format}")

    spec = get_spec(name)
    if name == "synthetic":
        raise ValueError("'synthetic' is generated in memory in well under a second; there is nothing "
                         "to prepare. Received: --dataset=synthetic")
    if name != "csv" and not raw_dir:
        raise ValueError(f"--raw_dir is required for --dataset={name}. Received: nothing")
    if raw_dir and not os.path.isdir(raw_dir):
        raise FileNotFoundError(f"Raw folder not found: {raw_dir}. Received: --raw_dir={raw_dir}")
    if prepared.is_prepared_dir(raw_dir):
        raise ValueError(f"{raw_dir} is a prepared folder, not raw files. Received: --raw_dir={raw_dir}")
    os.makedirs(out_dir, exist_ok=True)
    split = resolve_domain_split(spec, domain_split)
    start = time.time()
    sharded = file_format in SHARD_FORMATS
    # Shards replace the cache file: no npz copy in (or beside) the shard folder.
    dataset = load_dataset(name, data_dir=raw_dir, domain_split=split, cache_dir=False if sharded else out_dir,
                           seed=seed, **options)
    logging.info("%s prepared in %.1fs (cache %s)", dataset.name, time.time() - start, dataset.info.get("cache_status"))
    if not sharded and (not dataset.info.get("cache_file") or not os.path.isfile(dataset.info["cache_file"])):
        raise OSError(f"Could not write the prepared file into {out_dir} (see the warning above). "
                      f"Received: --out_dir={out_dir}")
    expected = spec.expected_stats.get(split)
    request = {
        "dataset": name, "domain_split": split if spec.default_domain_split else None, "seed": seed,
        "options": options, "raw_dir": os.path.abspath(raw_dir) if raw_dir else (
            os.path.dirname(options["path"]) if options.get("path") else None),
    }
    if sharded:
        from mlora_tf.data import shards

        manifest = shards.write_shards(
            dataset, out_dir, file_format=file_format,
            shard_rows=shards.DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows,
            request=request, expected=expected,
        )
    else:
        manifest = prepared.write_manifest(out_dir, dataset, request=request, expected=expected)
    return dataset, prepared.dataset_statistics(dataset), expected, manifest


def main(argv):
    del argv
    from mlora_tf.data import prepared

    previous = prepared.set_progress_reporter(TextProgress())
    try:
        # Every flag and input path first; then the work.
        name, domain_split, options = check_request()
        if name == "csv" and not options.get("features"):
            for line in infer_csv_features(options):
                print(line)
            sys.stdout.flush()
        configure_threads()
        dataset, stats, expected, manifest = prepare(
            name, domain_split, options, FLAGS.raw_dir, FLAGS.out_dir, seed=FLAGS.seed,
            file_format=FLAGS.format, shard_rows=FLAGS.shard_rows,
        )
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"mlora-prepare: error: {e}", file=sys.stderr)
        return 2
    finally:
        prepared.set_progress_reporter(previous)
    print(dataset.summary())
    print()
    print(f"Statistics of {dataset.name} (expected: {'paper Table 1 / datasets.md' if expected else 'none known'}):")
    print(format_statistics(stats, expected))
    domain_map = dataset.info.get("domain_map")
    if domain_map:
        print("Domain map (value -> id): " + ", ".join(f"{k} -> {v}" for k, v in domain_map.items()))
    for line in feature_lines(dataset, stats):
        print(line)
    for note in dataset.info.get("notes", []):
        print(f"note: {note}")
    if FLAGS.format in SHARD_FORMATS:
        from mlora_tf.data import shards

        files = sum(len(shards.open_shards(FLAGS.out_dir, verify="size").files(s)) for s in ("train", "val", "test"))
        print(f"shards: {manifest} ({files} {FLAGS.format} files of at most "
              f"{FLAGS.shard_rows or shards.DEFAULT_SHARD_ROWS:,} rows)")
        print(f"stream with: mlora_tf.data.shards.open_shards({FLAGS.out_dir!r}).dataset_for(split, domain, "
              "batch_size, shuffle_buffer, seed); .to_memory() reads it whole")
        return 0
    print(f"prepared: {manifest}")
    if dataset.is_multitask:
        print(f"train with: mlora-train --dataset={name} --data_dir={FLAGS.out_dir} "
              f"--task_set={','.join(dataset.labels)} --model=m3oe")
    else:
        print(f"train with: mlora-train --dataset={name} --data_dir={FLAGS.out_dir}")
    return 0


def feature_lines(dataset, stats: dict) -> list[str]:
    """What `mlora-prepare` prints about the model features and the labels: every
    sparse feature with its source column and vocabulary size (when the loader records
    the columns, as the csv loader does), and each label's positive rate when there are
    several."""
    lines = []
    sources = dataset.info.get("feature_map") or {}
    if sources:
        buckets = dataset.info.get("buckets") or {}
        parts = []
        for feature in dataset.features:
            column = sources.get(feature, dataset.info.get("domain_column") if feature == "domain" else None)
            kind = "buckets" if column in buckets else ("domains" if feature == "domain" else "ids")
            if feature in (dataset.info.get("hash_buckets") or {}):
                kind = f"hash buckets, {dataset.info['hash_buckets'][feature]['kind']} ids"
            origin = f" <- {column}" if column is not None and column != feature else ""
            parts.append(f"{feature}{origin} ({dataset.vocab_sizes[feature]:,} {kind})")
        lines.append("Model features: " + ", ".join(parts))
    rates = stats.get("positive_rates")
    if rates:
        lines.append("Labels (positive rate): " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    return lines


def parse_argv(argv: list[str], program: str, flag_values: flags.FlagValues, doc: str) -> list[str]:
    """Parses this program's flags, then absl's own (logging) flags; a bad flag exits 2.

    `--help` prints this program's flags and exits 0.
    """
    if any(a in ("--help", "-h", "--helpfull", "-?") for a in argv[1:]):
        print(doc.strip() + "\n\nFlags:\n" + flag_values.get_help(include_special_flags=False))
        sys.exit(0)
    try:
        rest = flag_values(argv, known_only=True)
        return flags.FLAGS(rest)
    except flags.Error as e:
        print(f"{program}: error: {e} (see {program} --help)", file=sys.stderr)
        sys.exit(2)


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=lambda argv: parse_argv(argv, "mlora-prepare", FLAGS, __doc__))


if __name__ == "__main__":
    run()
