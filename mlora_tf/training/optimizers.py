"""`FusedAdam`: Keras Adam whose per-variable update is TF's fused `ApplyAdam` kernel.

The arithmetic is Adam's as in TF 1 and Keras 3 (`m = b1 m + (1 - b1) g`,
`v = b2 v + (1 - b2) g^2`, `w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`);
one kernel per variable instead of a dozen small ops, which on a CPU is a large share of
a small CTR model's step. Sparse (embedding) gradients are made dense first: the
original's TF 1 Adam had the same dense-equivalent moment decay (original-model-zoo.md
§3.1, §8.13).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.optimizers.FusedAdam")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (no amsgrad, no weight decay) with a fused update step.

    Args: as `keras.optimizers.Adam`; `epsilon` defaults to TF 1's 1e-8.
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("FusedAdam does not implement amsgrad. Received: amsgrad=True")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def _step_constants(self, dtype, learning_rate) -> dict:
        """The scalars every variable's kernel takes this step: `beta_1^t`, `beta_2^t`
        (`t` = iterations + 1), the learning rate, `beta_1`, `beta_2`, `epsilon`."""
        step = tf.cast(self.iterations + 1, dtype)
        return dict(
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
        )

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # The step's scalars once per dtype, not once per variable: each variable's
        # update would otherwise read `iterations` and take two powers of its own
        # (about 5 graph nodes a variable, executed every step).
        constants = {}
        for grad, var in grads_and_vars:
            dtype = var.dtype
            if dtype not in constants:
                constants[dtype] = self._step_constants(dtype, learning_rate)
            distribution.extended.update(var, self._apply_adam, args=(grad, constants[dtype]), group=False)

    def update_step(self, gradient, variable, learning_rate):
        self._apply_adam(variable, gradient, self._step_constants(variable.dtype, learning_rate))

    def _apply_adam(self, variable, gradient, constants: dict):
        """One fused `ResourceApplyAdam` of `gradient` (dense, or `IndexedSlices` made
        dense) to `variable` with this step's `constants` (`_step_constants`)."""
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        index = self._get_variable_index(variable)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            grad=tf.cast(gradient, variable.dtype),
            **constants,
        )
