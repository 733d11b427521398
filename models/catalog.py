"""Names of the models and datasets, importable without JAX (for validating configurations)."""

MODELS = ("logreg", "mlp", "cnn", "pixelcnn")
DATASETS = ("digits", "mnist1d", "teacher-student", "mnist", "cifar10")
