"""Periphery adapters on a programmed chip: forward cost relative to the bare analog base (goal ≤ 1.02×).

MiniLM-L6 on the ``mapped`` preset, one PCM chip at t = 1 day, ``--n`` SST-2 dev sentences in batches of 64
(as the Monte Carlo evaluates them). Each adapter (GRASP K=16, (IA)^3, LoRA r=8, BitFit) is attached to its
own converted copy of the base, programmed as the same chip; the forward is timed folded (the adapter folded
into the chip's effective weights: the default inference path) and unfolded (the adapter's own forward
around the tiles), interleaved with the bare base so a load change hits every side alike. Medians of
``--repeats`` rounds.

    python benchmarks/bench_adapter_forward.py [--n 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import sst2_sentences, table, write_result  # noqa: E402

BASE = "minilm-l6"


def _model(method: str | None, device: str):
    from analog_peft.chips import ChipProgrammer
    from analog_peft.deploy import deploy
    from analog_peft.methods import BitFitConfig, GraspConfig, IA3Config, LoraConfig, attach

    model = deploy(BASE, None, "periphery", "mapped", 2).model
    configs = {"grasp": GraspConfig(k=16), "ia3": IA3Config(), "lora": LoraConfig(r=8), "bitfit": BitFitConfig()}
    net = attach(model, configs[method]) if method else model
    with torch_no_grad():
        for p in (net.adapter_parameters() if method else []):
            p.add_(0.01)  # off the identity init
    net = net.to(device).eval()
    ChipProgrammer(model, "pcm", seed=0).program(0).drift(86400.0)
    return net


def torch_no_grad():
    import torch

    return torch.no_grad()


def _unfold(net, on: bool) -> None:
    from analog_peft.methods.layer import AdapterLayer

    for m in net.modules():
        if isinstance(m, AdapterLayer):
            if on:
                m.foldable_now = lambda: False
            else:
                m.__dict__.pop("foldable_now", None)


def _time(net, batches) -> float:
    with torch_no_grad():
        start = time.perf_counter()
        for b in batches:
            net(**b)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default="grasp,ia3,lora,bitfit")
    args = ap.parse_args(argv)
    from analog_peft.models import load_tokenizer

    tok = load_tokenizer(BASE)
    s = sst2_sentences(args.n)
    batches = [{k: v.to(args.device) for k, v in tok(s[i:i + 64], padding=True, truncation=True, max_length=128,
                                                       return_tensors="pt").items()} for i in range(0, args.n, 64)]
    methods = [m for m in args.methods.split(",") if m]
    nets = {"base": _model(None, args.device), **{m: _model(m, args.device) for m in methods}}
    times: dict[str, list[float]] = {k: [] for k in ["base", *methods, *(f"{m} unfolded" for m in methods)]}
    for net in nets.values():
        _time(net, batches)  # warm-up (builds each layer's folded map once)
    for _ in range(args.repeats):
        times["base"].append(_time(nets["base"], batches))
        for m in methods:
            times[m].append(_time(nets[m], batches))
            _unfold(nets[m], True)
            times[f"{m} unfolded"].append(_time(nets[m], batches))
            _unfold(nets[m], False)
            _time(nets[m], batches)  # re-fold outside the timing
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med["base"] for k in med}
    rows = [[k, med[k], ratios[k]] for k in med]
    print(f"adapter forward on a programmed PCM chip, {BASE} mapped, {args.n} sentences, "
          f"torch threads {torch.get_num_threads()}")
    print(table(["", "s / eval set", "vs bare base"], rows))
    result = {"config": vars(args), "median_s": med, "ratios": ratios, "runs": times}
    write_result("adapter_forward", result)
    return result


if __name__ == "__main__":
    main()
