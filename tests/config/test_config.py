from pathlib import Path

import pytest

from dropcli.config import Config, load_config, replace, to_yaml
from dropcli.errors import DropcliError

CONFIGS = Path(__file__).parents[2] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_chapters_hyperparameters():
    config = Config()
    assert config.model.hidden == (256, 256)
    assert config.model.dropout == (0.5, 0.5)
    assert config.optim.lr == 0.1
    assert (config.train.batch_size, config.train.epochs) == (256, 10)
    assert (config.seed, config.device) == (0, "auto")


def test_default_yaml_matches_the_builtin_defaults():
    assert load_config(CONFIGS / "default.yaml") == Config()


def test_every_shipped_config_loads_and_is_named_after_its_file():
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert {"default", "smoke", "long", "srivastava", "best"} <= {path.stem for path in paths}
    for path in paths:
        assert load_config(path).name == path.stem


def test_precedence_defaults_then_file_then_set_then_flags(tmp_path):
    path = write(tmp_path, "optim: {lr: 0.2}\nseed: 3\nmodel: {kind: builtin, dropout_1: 0.1}\n")
    config = load_config(path, ["optim.lr=0.3", "seed=4"], {"seed": ("--seed", 5), "device": ("--device", None)})
    assert config.optim.lr == 0.3  # --set beats the file
    assert config.seed == 5  # the flag beats --set
    assert config.model.kind == "builtin"  # from the file
    assert config.model.dropout == (0.1, 0.5)  # the alias dropout_1 sets layer 1; layer 2 keeps the default
    assert config.name == "config"  # the file's stem when it names none


def test_set_values_are_parsed_as_yaml_scalars():
    config = load_config(None, ["data.root=null", "train.epochs=3", "model.dropout=0", "device=cpu"])
    assert config.data.root is None
    assert config.train.epochs == 3
    assert config.model.dropout == (0.0, 0.0) and isinstance(config.model.dropout[0], float)
    assert config.device == "cpu"


def test_exponent_notation_is_a_number(tmp_path):
    # PyYAML reads "1e-3" as a string; dropcli takes it as the number a user meant.
    assert load_config(write(tmp_path, "optim: {lr: 1e-3}\n")).optim.lr == 0.001
    assert load_config(None, ["optim.lr=2E2"]).optim.lr == 200.0
    with pytest.raises(DropcliError, match="optim.lr must be a number, got '1e'"):
        load_config(None, ["optim.lr=1e"])


def test_yaml_round_trip(tmp_path):
    config = load_config(CONFIGS / "smoke.yaml", ["optim.lr=0.05"], {"model.kind": ("--model", "builtin")})
    assert load_config(write(tmp_path, to_yaml(config))) == config


def test_replace_changes_one_key_and_validates():
    assert replace(Config(), "model.kind", "builtin").model.kind == "builtin"
    with pytest.raises(DropcliError, match="model.kind must be one of"):
        replace(Config(), "model.kind", "nope")


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {dropout: [0.5\n", r"malformed YAML at line \d+"),
        ("model:\n  dropot: 0.3\n", r"unknown key 'model.dropot' \(did you mean 'model.dropout'\?\)"),
        ("optimm: {lr: 0.1}\n", r"unknown key 'optimm' \(did you mean 'optim'\?\)"),
        ("train: {epochs: ten}\n", r"train.epochs must be an integer, got 'ten'"),
        ("train: {epochs: 2.5}\n", r"train.epochs must be an integer, got 2.5"),
        ("optim: {lr: true}\n", r"optim.lr must be a number, got True"),
        ("model: 3\n", r"model must be a mapping"),
        ("- 1\n- 2\n", r"top level must be a mapping"),
        ("model: {dropout: [1.5, 0.5]}\n", r"model.dropout must be rates between 0 and 1, got \[1.5, 0.5\]"),
        ("model: {dropout_2: -0.1}\n", r"model.dropout must be rates between 0 and 1, got \[0.5, -0.1\]"),
        ("model: {hidden: [256, 256, 256], dropout: [0.5, 0.2]}\n", r"model.dropout has 2 rates for 3 hidden layers"),
        ("model: {hidden: []}\n", r"model.hidden must name at least one hidden layer"),
        ("model: {hidden: [256, 0]}\n", r"model.hidden must be widths >= 1, got \[256, 0\]"),
        ("model: {hidden: [256, 2.5]}\n", r"model.hidden must be hidden-layer widths, e.g. \[1024, 1024, 1024\]"),
        ("model: {hidden: 256, dropout_2: 0.1}\n", r"model.dropout_2 names hidden layer 2, but model.hidden has 1"),
        ("optim: {lr: 0}\n", r"optim.lr must be a finite number > 0, got 0.0"),
        ("optim: {lr: -1}\n", r"optim.lr must be a finite number > 0"),
        ("train: {batch_size: 0}\n", r"train.batch_size must be >= 1, got 0"),
        ("train: {epochs: 0}\n", r"train.epochs must be >= 1, got 0"),
        ("model: {hidden_1: 0}\n", r"model.hidden must be widths >= 1, got \[0, 256\]"),
        ("model: {hidden_2: -3}\n", r"model.hidden must be widths >= 1"),
        ("model: {kind: dropit}\n", r"model.kind must be one of scratch, builtin, none, dropconnect, gaussian, got 'dropit'"),
        ("model: {mask_mode: bytes}\n", r"model.mask_mode must be one of bool, bits, bernoulli"),
        ("device: gpu\n", r"device must be auto, cpu, cuda, cuda:N \(N < 10000\) or mps, got 'gpu'"),
        ("data: {val_split: 1.0}\n", r"data.val_split must be at least 0 and below 1"),
        ("train: {precision: fp16}\n", r"train.precision must be one of fp32, bf16, auto, got 'fp16'"),
        ("train: {compile: yes please}\n", r"train.compile must be true or false, got 'yes please'"),
        ("train: {monitor: val_acc}\n", r"train.monitor must be auto unless data.val_split > 0"),
        ("optim: {weight_decay: -0.1}\n", r"optim.weight_decay must be a finite number >= 0"),
        ("model: {kind: gaussian, dropout_1: 1.0}\n", r"model.dropout must be rates below 1 for gaussian noise"),
        ("metrics: {activation_stats: 1}\n", r"metrics.activation_stats must be true or false, got 1"),
    ],
)
def test_bad_file_names_file_key_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DropcliError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file():
    with pytest.raises(DropcliError, match="config file nowhere.yaml not found"):
        load_config("nowhere.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr", r"bad --set 'optim.lr': expected KEY=VALUE"),
        ("=3", r"bad --set '=3': expected KEY=VALUE"),
        ("optim..lr=3", r"expected KEY=VALUE"),
        ("optim.lr=[1", r"not a valid YAML scalar"),
        ("optim.lrr=0.1", r"--set optim.lrr=0.1: unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)"),
        ("optim.lr.x=1", r"optim.lr is a value, not a section"),
        ("optim.lr=fast", r"--set optim.lr=fast: optim.lr must be a number, got 'fast'"),
        ("model.dropout_1=2", r"--set model.dropout_1=2: model.dropout must be rates between 0 and 1"),
        ("model.dropout=[0.1,0.2,0.3]", r"--set model.dropout=\[0.1,0.2,0.3\]: model.dropout has 3 rates for 2 hidden layers"),
        ("model.hidden=0x16", r"--set model.hidden=0x16: model.hidden must be widths >= 1, got \[0, 16\]"),
        ("model.hidden=wide", r"--set model.hidden=wide: model.hidden must be hidden-layer widths"),
    ],
)
def test_bad_set(override, message):
    with pytest.raises(DropcliError, match=message):
        load_config(None, [override])


def test_flag_errors_name_the_flag():
    with pytest.raises(
        DropcliError, match=r"--model: model.kind must be one of scratch, builtin, none, dropconnect, gaussian, got 'drop'"
    ):
        load_config(None, [], {"model.kind": ("--model", "drop")})


@pytest.mark.parametrize(
    "overrides, hidden, dropout",
    [
        (["model.hidden=1024x1024x1024"], (1024, 1024, 1024), (0.5, 0.5, 0.5)),  # the default rate, for every layer
        (["model.hidden=[1024, 1024, 1024]", "model.dropout=0.2"], (1024, 1024, 1024), (0.2, 0.2, 0.2)),
        (["model.hidden=2048"], (2048,), (0.5,)),
        (["model.hidden=64x32x16", "model.dropout=[0.1,0.2,0.3]"], (64, 32, 16), (0.1, 0.2, 0.3)),
        (["model.hidden_1=100", "model.dropout_2=0.3"], (100, 256), (0.5, 0.3)),  # aliases: places in the lists
        (["model.dropout_1=0.1", "model.dropout=0.4"], (256, 256), (0.4, 0.4)),  # a later whole list wins
        (["model.dropout=0.4", "model.dropout_1=0.1"], (256, 256), (0.1, 0.4)),  # a later alias wins
        (["model.hidden=8x8x8", "model.hidden_2=4"], (8, 4, 8), (0.5, 0.5, 0.5)),
    ],
)
def test_widths_and_rates_are_lists_and_the_old_keys_name_their_places(overrides, hidden, dropout):
    model = load_config(None, overrides).model
    assert (model.hidden, model.dropout) == (hidden, dropout)


def test_a_saved_config_always_holds_the_lists(tmp_path):
    old = load_config(write(tmp_path, "model: {hidden_1: 16, hidden_2: 8, dropout_1: 0.2, dropout_2: 0.3}\n"))
    assert (old.model.hidden, old.model.dropout) == ((16, 8), (0.2, 0.3))
    text = to_yaml(old)
    assert "hidden_1" not in text and "dropout_1" not in text
    assert load_config(write(tmp_path, text)) == old


def test_replacing_the_widths_keeps_one_rate_for_all_layers():
    # A sweep over architectures: the default (one rate) follows each depth.
    assert replace(Config(), "model.hidden", "1024x1024x1024").model.dropout == (0.5, 0.5, 0.5)
    per_layer = load_config(None, ["model.dropout=[0.2,0.5]"])
    with pytest.raises(DropcliError, match="model.dropout has 2 rates for 3 hidden layers"):
        replace(per_layer, "model.hidden", "64x64x64")


@pytest.mark.parametrize(
    "files, caused, words",
    [
        (["a.yaml", "b.yaml"], "b.yaml", "model.hidden 64 (1 hidden layer) leaves 2 rates in model.dropout (set by {a.yaml})"),
        (["b.yaml", "a.yaml"], "a.yaml", "model.dropout has 2 rates for 1 hidden layer (model.hidden 64, set by {b.yaml})"),
    ],
)
def test_a_clash_between_merged_files_names_the_file_whose_key_caused_it(tmp_path, files, caused, words):
    (tmp_path / "a.yaml").write_text("model: {dropout: [0.2, 0.5]}\n")
    (tmp_path / "b.yaml").write_text("model: {hidden: [64]}\n")
    with pytest.raises(DropcliError) as caught:
        load_config([tmp_path / name for name in files])
    expected = words.replace("{a.yaml}", str(tmp_path / "a.yaml")).replace("{b.yaml}", str(tmp_path / "b.yaml"))
    assert str(caught.value).startswith(f"{tmp_path / caused}: {expected}")
