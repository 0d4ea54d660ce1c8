"""TensorFlow's start-up chatter, hidden in the programs (`--tf_log` brings it back).

Importing TensorFlow prints lines such as `oneDNN custom operations are on ...`,
`Could not find cuda drivers ...` and `This TensorFlow binary is optimized to use
available CPU instructions ...` before any of our output. In the programs (the console
scripts of setup.py, or `python -m mlora_tf.cli.<program>`) they are hidden by default:

- `TF_CPP_MIN_LOG_LEVEL=2` is set (unless the user set it): TensorFlow's C++ INFO and
  WARNING lines go, its errors stay;
- the lines TensorFlow writes while it is imported and probes the devices, which that
  variable does not reach (they come before its logging is set up), are held back; what
  is written back is everything but TensorFlow's INFO / WARNING lines and, on a host
  without a GPU, the CUDA error saying there is none (if the import fails, everything).

`--tf_log` (or `TF_CPP_MIN_LOG_LEVEL` set to 0 or 1 by the user) keeps everything. absl's
INFO progress lines are unaffected. This module must not import TensorFlow: the package
calls `quiet_tensorflow_start` before its first TensorFlow import. Library use (tests,
notebooks, the experiment drivers) is untouched.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

PROGRAMS: tuple[str, ...] = (
    "mlora-train", "mlora-evaluate", "mlora-export", "mlora-add-domain", "mlora-prepare", "mlora-download",
)
ENV_VAR = "TF_CPP_MIN_LOG_LEVEL"
FLAG = "tf_log"
FLAG_HELP = ("Show TensorFlow's own start-up and C++ log lines (oneDNN, CUDA, CPU instructions), hidden by "
             "default (TF_CPP_MIN_LOG_LEVEL=2 unless set).")
_CHATTER = re.compile(
    rb"^(?:[IW]\d{4} [\d:. ]+\s*\d+ \S+:\d+\]|\d{4}-\d\d-\d\d [\d:.]+: [IW] |WARNING: All log messages before absl::InitializeLog"
    rb"|To enable the following instructions:|This TensorFlow binary is optimized)"
)

# On a host without a GPU, TensorFlow's CUDA build reports that it found none as an error.
_NO_CUDA_DEVICE = re.compile(rb"failed call to cuInit|CUDA_ERROR_NO_DEVICE|Could not find cuda drivers")


def running_program(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> str | None:
    """The program this process runs (`mlora-train`, `mlora_tf.cli.train`, ...), or None
    when it is not one of ours (a test, a notebook, a driver script)."""
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    first = argv[0] if argv else ""
    name = os.path.basename(first)
    if name in PROGRAMS:
        return name
    parts = os.path.normpath(first).split(os.sep)
    if len(parts) >= 3 and parts[-3:-1] == ["mlora_tf", "cli"] and name.endswith(".py"):
        return "mlora_tf.cli." + name[:-3]
    for i, arg in enumerate(orig_argv[:-1]):
        if arg == "-m" and orig_argv[i + 1].startswith("mlora_tf.cli."):
            return orig_argv[i + 1]
    return None


def wants_tf_log(argv: list[str]) -> bool:
    """Whether `--tf_log` (`--tf_log=true`, `--tf_log=1`) is on the command line, and not
    turned off again later (`--notf_log`, `--tf_log=false`)."""
    on = False
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg in (f"--{FLAG}", f"-{FLAG}"):
            on = True
        elif arg in (f"--no{FLAG}", f"-no{FLAG}"):
            on = False
        elif arg.startswith((f"--{FLAG}=", f"-{FLAG}=")):
            on = arg.split("=", 1)[1].strip().lower() in ("1", "true", "t", "yes", "y")
    return on


def define_flag(flag_values=None) -> None:
    """Defines `--tf_log` on `flag_values` (default `absl.flags.FLAGS`), once."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    if FLAG not in flag_values:
        flags.DEFINE_boolean(FLAG, False, FLAG_HELP, flag_values=flag_values)


def quiet_tensorflow_start(argv: list[str] | None = None) -> bool:
    """In a program, and unless asked for TensorFlow's log: sets `TF_CPP_MIN_LOG_LEVEL=2`
    (if unset) and imports TensorFlow with its start-up chatter held back.

    Returns:
        Whether the chatter was hidden (False outside the programs, with `--tf_log`, when
        the user set `TF_CPP_MIN_LOG_LEVEL` to 0 or 1, or when TensorFlow is already
        imported).
    """
    argv = sys.argv if argv is None else argv
    if "tensorflow" in sys.modules or running_program(argv) is None or wants_tf_log(argv):
        return False
    if os.environ.get(ENV_VAR, "").strip() in ("0", "1"):
        return False
    os.environ.setdefault(ENV_VAR, "2")
    return _import_tensorflow_quietly()


def _import_tensorflow_quietly() -> bool:
    """Imports TensorFlow with file descriptor 2 sent to a temporary file, then writes
    back what is not start-up chatter (all of it if the import fails)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False  # no usable stderr descriptor: import as it is
    failed, no_gpu = False, False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow

            # The device probe's CUDA lines too (every program probes the devices first
            # anyway, to size its thread pools; this initialises no runtime).
            no_gpu = not tensorflow.config.list_physical_devices("GPU")
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().splitlines(keepends=True)
            kept = lines if failed else [
                line for line in lines
                if not (_CHATTER.match(line) or (no_gpu and _NO_CUDA_DEVICE.search(line)))
            ]
            if kept:
                os.write(2, b"".join(kept))
    return True
