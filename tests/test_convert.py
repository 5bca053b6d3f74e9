"""Analog conversion: exactness of the ideal preset, GPT-2 Conv1D, tied heads, reports, bad input."""

from __future__ import annotations

import pytest
import torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from analog_peft.convert import ConversionError, analog_layers, analog_tiles, calibrate_input_ranges, convert
from analog_peft.presets import RPUPreset


@pytest.fixture
def minilm(minilm_dir):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2).eval()


@pytest.fixture
def batch(minilm_dir, sst2_sentences):
    tok = AutoTokenizer.from_pretrained(minilm_dir)
    return tok(sst2_sentences[:8], padding=True, return_tensors="pt")


def test_ideal_minilm_matches_digital(minilm, batch):
    with torch.no_grad():
        ref = minilm(**batch, output_hidden_states=True)
    report = convert(minilm, "ideal")
    with torch.no_grad():
        out = minilm(**batch, output_hidden_states=True)
    assert (out.logits - ref.logits).abs().max() <= 1e-5
    valid = batch["attention_mask"].bool()  # padding positions carry no meaning (and larger float noise)
    assert (out.hidden_states[-1] - ref.hidden_states[-1])[valid].abs().max() <= 1e-5
    assert len(report.analog) == 36  # 6 blocks × (Q, K, V, O, FFN in, FFN out)
    assert report.analog_weights == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    fates = {m.name: m for m in report.modules}
    assert fates["classifier"].fate == "digital" and "head" in fates["classifier"].reason
    assert fates["bert.pooler.dense"].fate == "digital"
    assert fates["bert.embeddings.word_embeddings"].fate == "digital"


def test_ideal_gpt2_conv1d_matches_digital_and_keeps_tie(tiny_gpt2):
    x = torch.randint(0, 128, (2, 9))
    with torch.no_grad():
        ref = tiny_gpt2(x).logits
    report = convert(tiny_gpt2, "ideal")
    with torch.no_grad():
        out = tiny_gpt2(x).logits
    assert (out - ref).abs().max() <= 1e-5
    assert {m.type for m in report.analog} == {"Conv1D→AnalogLinear"}
    assert len(report.analog) == 8
    head = next(m for m in report.modules if m.name == "lm_head")
    assert head.fate == "digital" and "tied" in head.reason
    assert tiny_gpt2.lm_head.weight.data_ptr() == tiny_gpt2.transformer.wte.weight.data_ptr()


def test_llama_conversion_covers_all_projections(tiny_llama):
    x = torch.randint(0, 128, (2, 7))
    with torch.no_grad():
        ref = tiny_llama(x).logits
    report = convert(tiny_llama, "ideal")
    with torch.no_grad():
        assert (tiny_llama(x).logits - ref).abs().max() <= 1e-5
    assert len(report.analog) == 2 * 7


def test_only_torch_tiles_are_built(minilm):
    convert(minilm, "standard")
    tiles = analog_tiles(minilm)
    assert tiles and all(isinstance(t, TorchInferenceTile) and isinstance(t.tile, TorchSimulatorTile) for _, t in tiles)


def test_cpp_rpu_config_is_refused(minilm):
    with pytest.raises(TypeError, match="C\\+\\+"):
        convert(minilm, InferenceRPUConfig())


def test_cpp_tile_trap_is_armed():
    """The conftest trap really fires when aihwkit's C++ tile path is used (so the other tests prove something)."""
    from aihwkit.simulator.tiles.inference import InferenceTile

    with pytest.raises(AssertionError, match="C\\+\\+ tile"):
        InferenceTile(4, 4, InferenceRPUConfig())


def test_standard_preset_tiles_and_calibration(minilm, batch):
    report = convert(minilm, RPUPreset("standard", {"tile_size": 256}))
    # FFN-out has 1536 inputs → 6 tiles of 256 rows; everything else 384 → 2 tiles.
    assert report.n_tiles == 6 * (5 * 2 + 6)
    tiles = [t for _, t in analog_tiles(minilm)]
    assert all(float(t.input_range) == 3.0 for t in tiles)
    ranges = calibrate_input_ranges(minilm, [batch])
    assert len(ranges) == len(tiles)
    got = torch.tensor([float(t.input_range) for t in tiles])
    assert torch.allclose(got, torch.tensor(list(ranges.values())))
    assert got.max() > 20  # MiniLM's FFN-out inputs have outliers far beyond the default range of 3
    assert not minilm.training and not any(t.training for t in tiles)


def test_input_range_calibration_removes_clipping(minilm, batch):
    """Noise-free standard tiles: the default range (3.0) clips MiniLM's outliers; max calibration does not."""
    valid = batch["attention_mask"].bool()
    with torch.no_grad():
        ref = minilm.bert(**batch).last_hidden_state[valid]
    convert(minilm, RPUPreset("standard", {"out_noise": 0.0, "inp_res": -1, "out_res": -1}))

    def error() -> float:
        with torch.no_grad():
            out = minilm.bert(**batch).last_hidden_state[valid]
        return float((out - ref).norm() / ref.norm())

    clipped = error()
    calibrate_input_ranges(minilm, [batch])
    calibrated = error()
    assert clipped > 0.3 and calibrated < 0.1 and calibrated < clipped / 5


def test_module_selection_by_names_regex_roles(minilm):
    report = convert(minilm, "ideal", modules=["query", "re:.*attention\\.self\\.value", "role:ffn_up"])
    names = {m.name for m in report.analog}
    assert len(names) == 18
    assert all(n.endswith(("query", "value", "intermediate.dense")) for n in names)
    assert set(analog_layers(minilm)) == names


def test_exclude(minilm):
    report = convert(minilm, "ideal", exclude=["re:.*layer\\.0\\..*(query|key|value|dense)"])
    assert len(report.analog) == 30
    assert all(".layer.0." not in m.name for m in report.analog)


def test_bad_module_name_is_explained(minilm):
    with pytest.raises(ConversionError, match="matches no module.*Similar linear layers"):
        convert(minilm, "ideal", modules=["qurey"])


def test_unsupported_layer_type_is_explained(minilm):
    with pytest.raises(ConversionError, match="LayerNorm.*only nn.Linear and GPT-2 Conv1D"):
        convert(minilm, "ideal", modules=["re:.*attention.output.LayerNorm"])


def test_unknown_preset_is_explained(minilm):
    with pytest.raises(ValueError, match="unknown RPU preset 'perfect'.*ideal"):
        convert(minilm, "perfect")
    with pytest.raises(ValueError, match="no option"):
        RPUPreset("standard", {"tile_sise": 3})


def test_tied_head_named_explicitly_is_refused(tiny_gpt2):
    with pytest.raises(ConversionError, match="weight tying"):
        convert(tiny_gpt2, "ideal", modules=["lm_head"])


def test_converting_twice_is_refused(minilm):
    convert(minilm, "ideal", modules=["query"])
    with pytest.raises(ConversionError, match="already analog"):
        convert(minilm, "ideal")


def test_report_serialises(minilm, tmp_path):
    report = convert(minilm, "ideal")
    path = tmp_path / "r.json"
    report.to_json(str(path))
    import json

    data = json.loads(path.read_text())
    assert data["summary"]["analog_layers"] == 36
    assert data["rpu"]["name"] == "ideal"
    assert "analog layers on 36 tiles" in report.table()


def test_custom_torch_rpu_config_accepted(minilm):
    report = convert(minilm, TorchInferenceRPUConfig(), modules=["query"])
    assert report.rpu["name"] == "custom" and len(report.analog) == 6
    assert all(isinstance(m, AnalogLinear) for m in analog_layers(minilm).values())
