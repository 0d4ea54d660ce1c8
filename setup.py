from setuptools import find_packages, setup

setup(
    name="mlora_tf",
    version="0.1.0",
    description="MLoRA and MoE-MLoRA multi-domain CTR models in TensorFlow 2 / Keras 3",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mlora_tf", "mlora_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "numpy",
        "pandas",
        # Parquet files (mlora_tf.data.parquet); 14 is the first without CVE-2023-47248.
        "pyarrow>=14",
        "scikit-learn",
        "absl-py",
    ],
    extras_require={
        # pytest-xdist: `make test` runs the suite on two processes (README, "Tests").
        "dev": ["pytest", "pytest-xdist>=3.5"],
        "plots": ["matplotlib"],
        # The TF Serving request protos (PredictRequest) for clients and the export
        # tests; each release requires the TensorFlow of its own minor version.
        "serving": ["tensorflow-serving-api>=2.16,<3"],
    },
    entry_points={
        "console_scripts": [
            "mlora-train=mlora_tf.cli.train:run",
            "mlora-export=mlora_tf.cli.export:run",
            "mlora-evaluate=mlora_tf.cli.evaluate:run",
            "mlora-add-domain=mlora_tf.cli.add_domain:run",
            "mlora-prepare=mlora_tf.cli.prepare:run",
            "mlora-download=mlora_tf.cli.download:run",
        ],
    },
)
