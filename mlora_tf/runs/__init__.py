"""One run from a config to a result record, as the programs (`mlora_tf.cli`) call it:
training (`train`, `multitask`), scoring a run folder or an export (`evaluate`), and
adding a domain to a trained run (`add_domain`)."""
