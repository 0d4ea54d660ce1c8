"""Flags and set-up every program shares."""

from absl import flags

from mlora_tf.runtime import configure_threads


def define_thread_flags() -> None:
    """`--intra_op_threads` / `--inter_op_threads` (defined once per process)."""
    if "intra_op_threads" in flags.FLAGS:
        return
    flags.DEFINE_integer(
        "intra_op_threads", None, "Threads per TensorFlow op (default: 1 on CPU-only hosts, TF's choice with a GPU)."
    )
    flags.DEFINE_integer(
        "inter_op_threads", None, "TensorFlow ops run at once (default: CPU count on CPU-only hosts, TF's choice with a GPU)."
    )


def configure_threads_from_flags(large_ops: bool = False):
    """Apply the thread flags; call before the first TensorFlow op (`large_ops`: see
    `mlora_tf.runtime.configure_threads`)."""
    return configure_threads(flags.FLAGS.intra_op_threads, flags.FLAGS.inter_op_threads, large_ops=large_ops)


def check_input_file(path: str | None, flag: str) -> None:
    """A file given as `--flag` exists (None: not given, nothing to check)."""
    import os

    if path and not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "not found"
        raise FileNotFoundError(f"--{flag}: {path} {what}. Received: --{flag}={path}")


def check_input_dir(path: str | None, flag: str) -> None:
    """A folder given as `--flag` exists (None: not given, nothing to check)."""
    import os

    if path and not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.isfile(path) else "not found"
        raise FileNotFoundError(f"--{flag}: {path} {what}. Received: --{flag}={path}")
