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
        'fe59e1873a95e03eb6f46b2acd7ec131e87c5aef3e5c040f4f9b959d4d6421cc',
        '981ca68c253c0b181ff8b904ca7c110970c6fb3e676d49e999e1fc3476126cac',
        'bffc6dddccbebefe63c3cc456ce2ded0c777efab1533f901a75faef8ce5585c7',
        'fe59e1873a95e03eb6f46b2acd7ec131e87c5aef3e5c040f4f9b959d4d6421cc',
        '7377c2975166d546cb0b16d6bfcb239f42cd8b22859489b84ff0b7ad312fd81a',
        '40aa743ffe2f4cce1fe859d32ee6b66a608938e3ee8142f833b0aebccb83f6f7',
    ],
    'hermes': [
        '86833b9d701b3aac42011625d8901436db87b57ff9b09d5d1730ac2c59166415',
        '222ead906402e8183e0b8b9298769d3a3d0bac1e5ddc6cae176d98f5c739a1bc',
        '583e951a9ea49b770cb94f2a65e992dc2fc34495316ed3b3bac5a616a6d7daf0',
    ],
    'reram': [
        '38c13983a8528f75cc279e5359276f321f946397d876c2dd3c7142d196dc11bd',
        '80f59cdc2631693416f4687d013ef7deaf14d4aa18570ea36b0f7746ca40848e',
        'dc4ff22717bfd5200d42d084d253ed2d7abc73254ee7c079905b0bd69134f690',
    ],
    'reram_cmo': [
        '3e837357bc46fdb1bb1c8b077c13a7ab45ac02384dfc4a7301689b70444423a3',
        '02343beae82397d3e4f583c06f77c376d427166bd6be6e4d15e0ca693be4df24',
        '09055accfe6de4b7ade1c0ff5ab867037ec270fd66c504ccb159a29d76109cb9',
    ],
    'gaussian': [
        'fbdab2823563d916ab24a8da3fbc2ebbb134f35fcdff6cfabd625de5d4e47e77',
        '03da9f52dab2fb1f232de437e8a89beabf592fd3cd8199a00911a7aa624b1a61',
    ],
    'gaussian_std': [
        'fc1e9b540c578fa34ee51400b1038b1e7134a92b3def4cae9ef7d3221919943e',
        '21ebb09239735a7f4e45eee7de924d2342939974b832698dbf47a7e4127fdb1c',
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
