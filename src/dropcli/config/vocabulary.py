"""The closed sets of names dropcli accepts, each defined once, here.

Config validation, the CLI's help text, the model builder and the reports all read these.
This module imports nothing heavy, so `--help` and `config show` stay fast.
"""

# model.kind -> what sits in the noise slots (see model/mlp.py).
MODEL_KINDS = {
    "scratch": "dropcli's from-scratch dropout (a custom autograd Function)",
    "builtin": "torch.nn.Dropout",
    "none": "no noise: the baseline without regularisation",
    "dropconnect": "no unit dropout; each hidden layer's weights get a fresh mask per batch",
    "gaussian": "multiplicative Gaussian noise with dropout's mean and variance",
}

# model.mask_mode -> how the scratch op draws and keeps its mask (see model/dropout.py).
MASK_MODES = {
    "bool": "a 1-byte bool mask drawn as uniform > p",
    "bits": "the same mask packed 8 to a byte",
    "bernoulli": "a bool mask drawn with bernoulli_, bit for bit F.dropout's on the CPU",
    "int16": "a bool mask from 16-bit random numbers, four per 64-bit draw (p to 2**-16): the cheapest",
}

# The model's noise layers by name: on the inputs (with model.dropout_input > 0), then one after
# each hidden layer's ReLU.
INPUT_SLOT = "input_noise"


def noise_slots(depth: int, input_noise: bool = False) -> tuple[str, ...]:
    """("input_noise", "noise_1", ..., "noise_<depth>"), the first only with input noise."""
    return ((INPUT_SLOT,) if input_noise else ()) + tuple(f"noise_{layer}" for layer in range(1, depth + 1))


# data.name: the IDX data sets dropcli reads (see data/__init__.py).
DATA_SETS = {
    "fashion-mnist": "Zalando's clothing images (the chapter's; the default)",
    "mnist": "handwritten digits (the dropout paper's Table 2)",
    "kmnist": "Kuzushiji-MNIST: cursive Japanese characters",
}

# train.monitor: the validation metric that picks checkpoints/best.pt. "auto" is val_acc. Never
# a test metric: an epoch chosen by its test score is selected on the test set, whose score then
# overstates the run. Without a validation split there is no best epoch: the last is reported.
MONITORS = ("auto", "val_acc", "val_loss")
# What runs saved before the rule may hold: read as "auto" (see config.load_config).
TEST_MONITORS = ("test_acc", "test_loss")


def higher_is_better(metric: str) -> bool:
    """A metric's direction: accuracies (train_acc, val_acc, ...) up; losses and the rest down."""
    return metric.endswith("acc")


# optim.name: the optimizer.
OPTIMIZERS = {
    "sgd": "torch.optim.SGD (with optim.momentum, optim.nesterov)",
    "adam": "torch.optim.Adam",
    "adamw": "torch.optim.AdamW",
}

# optim.schedule: how the learning rate moves from epoch to epoch (see training/schedules.py).
SCHEDULES = {
    "constant": "optim.lr throughout",
    "step": "optim.lr times optim.step_gamma every optim.step_epochs epochs",
    "cosine": "from optim.lr down to 0 along a half cosine",
    "onecycle": "up from optim.lr / 25 to optim.lr, then down to optim.lr / 10^4 along a half cosine",
}

# train.engine: how each training step is computed (see training/epoch.py and training/fused.py).
ENGINES = {
    "autograd": "the model's modules, autograd and torch.optim (the chapter's code)",
    "fused": "the same step written out by hand: fewer passes over memory (one process; fp32 or bf16)",
}
# The model kinds the fused engine runs: those whose noise is unit dropout.
FUSED_KINDS = ("scratch", "builtin", "none")

# train.average: which weights a run evaluates and saves as its model (training/averaging.py).
AVERAGES = {
    "none": "the weights as trained",
    "ema": "an exponential moving average of the weights, updated after every step (train.ema_decay)",
    "swa": "the mean of the weights at the end of each epoch from train.swa_start on (stochastic weight averaging)",
}

# train.precision: how the matrix products run (see training/precision.py). "auto" is resolved
# when a run starts, to bf16 where the device has fast bf16 products and they measure faster,
# else fp32; the run's config.yaml and checkpoints hold the resolved one.
PRECISIONS = {
    "fp32": "32-bit floats throughout",
    "bf16": "bf16 matrix products, fp32 weights and update (fused: its bf16 step; autograd: autocast of the forward)",
    "auto": "bf16 where the device has fast bf16 products and they measure faster here, else fp32",
}

# evaluate --split
SPLITS = ("test", "train", "val")


def one_of(names) -> str:
    """ "a, b, c": the names of a set, for help text and error messages."""
    return ", ".join(names)
