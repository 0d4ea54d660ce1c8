"""`mlora-download`: fetch, verify (sha256) and safely unpack a MovieLens archive.

Examples:
  mlora-download --dataset=ml-1m                      # into ./datasets (or $MLORA_TF_DATA_DIR)
  mlora-download --dataset=ml-100k --data_dir=datasets
  mlora-download --dataset=ml-1m --url=file:///mnt/mirror/ml-1m.zip --sha256=HEX

A second call finds the files and does nothing. Without a network it prints where to put
the files by hand. Then: `mlora-train --dataset=ml-1m --data_dir=datasets ...` or
`mlora-prepare --dataset=ml-1m --raw_dir=datasets --out_dir=...`.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from mlora_tf.cli import tf_log
from mlora_tf.cli.prepare import parse_argv

FLAGS = flags.FlagValues()  # own flag set (see mlora_tf.cli.prepare)

flags.DEFINE_string("dataset", None, "ml-1m or ml-100k.", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "Where the archive and its folder go (default $MLORA_TF_DATA_DIR or ./datasets).", flag_values=FLAGS)
flags.DEFINE_string("sha256", None, "Expected sha256 of the archive (default: the official file's).", flag_values=FLAGS)
flags.DEFINE_string("url", None, "Another URL for the archive (a mirror, or file:// for a local copy).", flag_values=FLAGS)
flags.DEFINE_float("timeout", 60.0, "Network timeout in seconds.", flag_values=FLAGS)
tf_log.define_flag(FLAGS)


def main(argv):
    del argv
    from mlora_tf.data import download as download_lib
    from mlora_tf.data.movielens import default_data_dir

    data_dir = FLAGS.data_dir or default_data_dir()
    try:
        if not FLAGS.dataset:
            raise ValueError(f"--dataset is required ({', '.join(sorted(download_lib.ARCHIVES))}). Received: nothing")
        result = download_lib.download(
            FLAGS.dataset, data_dir, sha256=FLAGS.sha256, url=FLAGS.url, timeout=FLAGS.timeout
        )
    except (ValueError, OSError, download_lib.DownloadError) as e:
        print(f"mlora-download: error: {e}", file=sys.stderr)
        return 2
    if result.status == "present":
        print(f"{FLAGS.dataset}: already in {result.folder}; nothing to do.")
    else:
        check = "verified" if result.verified else "NOT verified (unknown digest; pass --sha256)"
        print(f"{FLAGS.dataset}: {result.status} into {result.folder} (sha256 {result.sha256}, {check}).")
    print(f"next: mlora-prepare --dataset={FLAGS.dataset} --raw_dir={data_dir} --out_dir=prepared/{FLAGS.dataset}")
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=lambda argv: parse_argv(argv, "mlora-download", FLAGS, __doc__))


if __name__ == "__main__":
    run()
