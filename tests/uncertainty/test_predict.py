"""`dropcli predict`: class probabilities for image files and test-set images."""

import json
import math
import sys

import pytest

from dropcli import data

RUN = {"train": 3000, "test": 500}


@pytest.fixture
def trained(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(2, **RUN), "--run-dir", "r", "-q").exit_code == 0
    return in_tmp / "r"


def test_predict_a_png_as_the_same_test_image(trained, invoke, fake_data, in_tmp):
    from PIL import Image

    images, labels = data.read_raw(fake_data)["test"]
    Image.fromarray(images[7].numpy()).save(in_tmp / "seven.png")
    by_file = invoke("predict", trained, "seven.png", "--json", "--data-dir", fake_data)
    by_index = invoke("predict", trained, "--index", "7", "--json", "--data-dir", fake_data)
    assert by_file.exit_code == 0 and by_index.exit_code == 0, by_file.output + by_index.output
    file_prediction = json.loads(by_file.stdout)["predictions"][0]
    index_prediction = json.loads(by_index.stdout)["predictions"][0]
    assert file_prediction["source"] == "seven.png" and index_prediction["true_class"] == int(labels[7])
    assert file_prediction["probabilities"] == pytest.approx(index_prediction["probabilities"], abs=1e-6)
    assert sum(file_prediction["probabilities"]) == pytest.approx(1, abs=1e-5)
    table = invoke("predict", trained, "seven.png", "--index", "7", "--top", "2", "--data-dir", fake_data)
    assert table.exit_code == 0 and "seven.png" in table.stdout and "test image 7" in table.stdout
    assert data.CLASS_NAMES[int(labels[7])] in table.stdout


def test_an_image_of_another_size_is_made_28_by_28(trained, invoke, fake_data, in_tmp):
    from PIL import Image

    Image.new("RGB", (90, 60), (255, 255, 255)).save(in_tmp / "white.jpg")
    result = invoke("predict", trained, "white.jpg", "--invert", "--mc-samples", "5", "--json", "--data-dir", fake_data)
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)["predictions"][0]
    assert 0 <= prediction["entropy"] <= math.log(10) + 1e-6
    assert sum(prediction["probabilities"]) == pytest.approx(1, abs=1e-5)


def test_predict_refuses_bad_input_in_one_line(trained, invoke, fake_data, in_tmp, monkeypatch):
    (in_tmp / "notes.png").write_text("not an image")
    cases = [
        ((), "name an image file (PNG or JPEG) or a test-set image with --index N"),
        (("notes.png",), "notes.png: not an image Pillow can read"),
        (("missing.png",), "image missing.png not found"),
        (("--index", "10000"), "--index 10000: the test set's images are numbered 0 to 9999"),
    ]
    for args, message in cases:
        result = invoke("predict", trained, *args, "--data-dir", fake_data)
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1, result.output
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    result = invoke("predict", trained, "notes.png", "--data-dir", fake_data)
    assert result.exit_code == 2 and "pip install 'dropcli[images]'" in result.stderr


def test_monte_carlo_passes_of_a_net_without_dropout_are_refused(in_tmp, invoke, small_args, fake_data):
    assert invoke("train", *small_args(1, **RUN), "--model", "none", "--run-dir", "plain", "-q").exit_code == 0
    result = invoke("predict", "plain", "--index", "0", "--mc-samples", "5", "--data-dir", fake_data)
    assert result.exit_code == 2 and "(model.kind none) has no dropout or noise layer to leave on" in result.stderr
    assert invoke("predict", "plain", "--index", "0", "--data-dir", fake_data).exit_code == 0
