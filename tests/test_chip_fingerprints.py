"""Chip ``k`` at time ``t`` is the same bits on every machine: any CPU vector ISA, thread count, process
and visiting order (chip scheme ``device_models.portable.SCHEME``).

The digests below are sha256 over every tile's weights and drift-compensation α of a small converted
stack (several tiles per layer, ``mapped`` preset) for a few ``(device model, chip, t)`` visited in the
order given. They were recorded once; since every draw and formula of a chip is built from correctly
rounded IEEE operations (``device_models.portable``), they hold on any x86-64 CPU, which the subprocess
test checks directly: the same chips under each ``ATEN_CPU_CAPABILITY`` this CPU supports (``default``,
``avx2``, ``avx512``) at 1, 2 and 3 torch threads, in fresh processes, both with kept and with re-drawn
chip state. Any change of the draws, their order or the device-model arithmetic changes the digests:
that is a new chip scheme (bump ``SCHEME``, redo the published tables).

Regenerate (only for an intended new scheme): ``python tests/test_chip_fingerprints.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import analog_tiles, convert

#: (device model, sequence of (chip, t) visited in that order) — the digest is taken after each step.
CASES: dict[str, list[tuple[int, float]]] = {
    "pcm": [(0, 0.0), (0, 1.0), (0, 86400.0), (0, 0.0), (3, 31536000.0), (0, 3600.0)],
    "hermes": [(1, 0.0), (1, 3600.0), (2, 2592000.0)],
    "reram": [(0, 1.0), (0, 86400.0), (5, 172800.0)],
    "reram_cmo": [(0, 0.0), (0, 1.0), (2, 86400.0)],
    "gaussian": [(0, 0.0), (4, 86400.0)],
    "gaussian_std": [(0, 0.0), (2, 1.0)],
    "none": [(0, 0.0), (1, 3600.0)],
}
DEVICES = {"gaussian_std": {"name": "gaussian", "eta": 0.02, "scale": "layer_std"}, "none": None}

EXPECTED: dict[str, list[str]] = {
    'pcm': [
        '03199a000fb72684ec2d5177e76a5db87519ae30953ca179cd590c17f057147b',
        '9de742396b1504ef1497e1fe31ee5f5dfbdaeffde12b16cfa7658238f05127d1',
        'c17426c68510a23c7b1edbcb6802b773226f27cd343023582cffb7aceaad7365',
        '03199a000fb72684ec2d5177e76a5db87519ae30953ca179cd590c17f057147b',
        'f095c02db02fbcc3ca937f92885718699fdf190bbd352f289319020a6988cc61',
        'f88abf099e3dcc202b406e45e339910e5518894c0bbde89f9b344cc6850d01b1',
    ],
    'hermes': [
        'e421ffd56d6edc0885ddc2a8f5d34f41e8b718188b5cec31e459228069bbbd32',
        '7b496a2c25034cabbdbdb40d4f60aa0c80187057919a412826970b7c3665985d',
        '234b3d49035153a7ccdf7e772ff506d70edcc5de9613ca7109c2c0102e03e0f3',
    ],
    'reram': [
        '3df619799415d3e904ad47216237bb46dc324f64416508e42708335de43102a8',
        '524624289ab0be3ac05b5f115ea143aab99f14d3f63dbbc34e0f85c4447d961c',
        'e3fa0d0ba689d129286cfcbfb87eea0fedbbe5c345db08f82243d4af6c6f922f',
    ],
    'reram_cmo': [
        '90b061a3fa137a5b4341904375a4dcaec7f201fc3bba1b969c4b728bdebb5e22',
        '7600656199880645fcbf3d587bbf005aebaa17e725375c82e789704e15882f10',
        'cd59702a6de5800c1a00f658244ce5466c68485c849cd49d6886615b5bc10921',
    ],
    'gaussian': [
        '2d94bd4e830af11a09d4fc126e0aa15ed65ecbd1e5340c7e4e389f6de2a67421',
        'd106ee262f5d95716ce342ed0d58f8ec6d370138d992b7de51a9f318223daf94',
    ],
    'gaussian_std': [
        '70a26d13f70733826974f1d47c8edc149a5c36cc564c0659c450807aa2c295e3',
        '8565153476e2cbec000b498252798a95da080d77a08616547bf20929c324fca9',
    ],
    'none': [
        '7d98f30d5a82aaaeb7ed96468622757d1e32b6d0e2084c392aabf8460497b2b1',
        '7d98f30d5a82aaaeb7ed96468622757d1e32b6d0e2084c392aabf8460497b2b1',
    ],
}


def _model() -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(600, 530), nn.ReLU(), nn.Linear(530, 40), nn.ReLU(), nn.Linear(40, 24))
    with torch.no_grad():
        for p in model.parameters():  # integer draws scaled by powers of two: the same bits on any CPU
            p.copy_(torch.randint(-2**20, 2**20, p.shape, generator=gen, dtype=torch.int32).float() * 2**-26)
        model[0].weight[0, :4] = 0.2  # outliers set max|W|, as in pretrained transformers
    convert(model, "mapped", modules=["0", "2", "4"])
    return model.eval()


def _digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tile in analog_tiles(model):
        h.update(name.encode())
        h.update(tile.tile.weight.detach().contiguous().numpy().tobytes())
        h.update(tile.alpha.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprints(case: str, keep_state: bool = True) -> list[str]:
    model = _model()
    chips = ChipProgrammer(model, DEVICES.get(case, case), seed=11, keep_state=keep_state)
    out = []
    for chip, t in CASES[case]:
        chips.at(chip, t)
        out.append(_digest(model))
    chips.reset()
    return out


def all_fingerprints(threads: tuple[int, ...]) -> dict[str, list[str]]:
    """``{"<case>/<kept|redrawn>/<threads>": digests}`` for every case, both state modes and thread count."""
    out = {}
    before = torch.get_num_threads()
    try:
        for n in threads:
            torch.set_num_threads(n)
            for case in CASES:
                for keep in (True, False):
                    out[f"{case}/{'kept' if keep else 'redrawn'}/{n}"] = fingerprints(case, keep)
    finally:
        torch.set_num_threads(before)
    return out


def supported_capabilities() -> list[str]:
    """The ``ATEN_CPU_CAPABILITY`` values this CPU can run: every level up to the one torch picked."""
    order = ["default", "avx2", "avx512"]
    best = torch.backends.cpu.get_cpu_capability().lower()
    return order[: order.index(best) + 1] if best in order else ["default"]


@pytest.mark.parametrize("keep_state", [True, False], ids=["kept-state", "re-drawn-state"])
@pytest.mark.parametrize("case", list(CASES))
def test_chips_are_bit_identical_to_the_recorded_ones(case: str, keep_state: bool) -> None:
    assert fingerprints(case, keep_state) == EXPECTED[case]


_CHILD = """
import json, sys, torch
sys.path.insert(0, {tests!r})
import test_chip_fingerprints as t
torch.set_num_threads(1)
x = torch.linspace(0.1, 50.0, 100003)
ref = {{"capability": torch.backends.cpu.get_cpu_capability(),
        "torch_pow": __import__("hashlib").sha256(torch.pow(x, 0.65).numpy().tobytes()).hexdigest()}}
print(json.dumps({{"meta": ref, "digests": t.all_fingerprints((1, 2, 3))}}))
"""


def test_same_chips_under_every_cpu_isa_and_thread_count() -> None:
    """Fresh processes under each supported vector ISA × 1/2/3 torch threads give the recorded chips,
    while torch's own ``pow`` does differ between ISAs (so the switch really took effect)."""
    results = {}
    for cap in supported_capabilities():
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": "1"}
        code = _CHILD.format(tests=str(Path(__file__).parent))
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[cap] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert results[cap]["meta"]["capability"].lower() == cap
    for cap, res in results.items():
        for key, digests in res["digests"].items():
            assert digests == EXPECTED[key.split("/")[0]], f"{cap}: {key}"
    if "default" in results and len(results) > 1:
        pows = {res["meta"]["torch_pow"] for res in results.values()}
        assert len(pows) > 1, "torch.pow gave the same bits under every ISA: the ISA switch did not take effect"


if __name__ == "__main__":
    print("EXPECTED: dict[str, list[str]] = {")
    for case in CASES:
        print(f"    {case!r}: [")
        for d in fingerprints(case):
            print(f"        {d!r},")
        print("    ],")
    print("}")
