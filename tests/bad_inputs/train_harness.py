"""Runs several `mlora-train` invocations in ONE process and reports each as JSON.

Usage: `python tests/bad_inputs/train_harness.py CASES.json RESULTS.json`, where
CASES.json is a list of `{"argv": [...], "enospc": bool}`.

Each case is run the way `absl.app.run` runs `mlora-train`: the flags are parsed, then
`main` is called. An exception escaping `main` is what `app.run` prints as a bare
traceback, so it is reported as `"traceback": true`. With `"enospc": true`,
`mlora_tf.io.atomic_write_bytes` sees a disk that is full (its `os.fsync` raises
`OSError(ENOSPC)`). Running the cases in one process pays TensorFlow's import once; a
separate process is needed because `mlora-train` and the experiment drivers define the
same absl flags.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging as py_logging
import os
import sys
import traceback
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

import mlora_tf.io as mlora_io  # noqa: E402
from mlora_tf.cli import train as train_cli  # noqa: E402


def _full_disk_os() -> types.SimpleNamespace:
    fake = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fake.fsync = fsync
    return fake


def run_case(case: dict) -> dict:
    out, err = io.StringIO(), io.StringIO()
    handler = py_logging.StreamHandler(err)
    handler.setFormatter(py_logging.Formatter("%(levelname)s %(message)s"))
    absl_logger = py_logging.getLogger("absl")
    absl_logger.addHandler(handler)
    real_os = mlora_io.os
    if case.get("enospc"):
        mlora_io.os = _full_disk_os()
    result = {"rc": None, "traceback": False}
    try:
        flags.FLAGS.unparse_flags()
        flags.FLAGS(list(case["argv"]))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result["rc"] = train_cli.main([])
            except SystemExit as e:
                result["rc"] = e.code
            except BaseException:  # what app.run would print as a bare traceback
                result["traceback"] = True
                err.write("Traceback (most recent call last):\n" + traceback.format_exc())
    finally:
        mlora_io.os = real_os
        absl_logger.removeHandler(handler)
        flags.FLAGS.unparse_flags()
    result.update(stdout=out.getvalue(), stderr=err.getvalue())
    return result


def main() -> int:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run_case(case) for case in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
