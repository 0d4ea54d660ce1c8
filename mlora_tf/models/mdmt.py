"""Baselines of M3oE's Table 2 in their multi-domain multi-task (MDMT) form.

Registered in `mlora_tf.models.multitask`; each is built from shared layers.
"""
