"""Training loop, phases and metrics."""

from mlora_tf.training.phases import Phase, schedule_phases  # noqa: F401
from mlora_tf.training.trainer import PhaseResult, Trainer  # noqa: F401
