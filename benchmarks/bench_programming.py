"""(a) Programming + drift of one chip: ``ChipProgrammer`` vs aihwkit's own per-tile loop.

Same model (a BERT-base-sized stack of linear layers, 85M analog weights, ``mapped`` preset: 512-row
tiles), same device physics (PCM, Nandakumar et al. 2019; aihwkit's ``PCMLikeNoiseModel(g_max=25)``),
same statistics (equivalence is tested in ``tests/test_performance_equivalence.py``). aihwkit's path is
``tile.program_weights()`` then ``tile.drift_weights(t)`` on every tile (what
``program_analog_weights``/``drift_analog_weights`` do), seeded with ``torch.manual_seed``; it includes
aihwkit's global drift compensation (a forward of an identity matrix per tile), ours computes α from the
weights. Both paths are timed alternately in one process, on the same tiles.

    python benchmarks/bench_programming.py [--layers 12] [--times 1,3600,86400,2592000,31536000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aihwkit.inference import PCMLikeNoiseModel  # noqa: E402

from analog_peft.chips import ChipProgrammer  # noqa: E402
from analog_peft.convert import analog_tiles, convert  # noqa: E402
from benchmarks._common import peak_rss_mb, table, write_result  # noqa: E402
from device_models import portable  # noqa: E402
from device_models.portable import Workspace  # noqa: E402


class LinearStack(nn.Module):
    """``layers`` × BERT-base block linears: q, k, v, o (768²), FFN up (768→3072) and down (3072→768)."""

    def __init__(self, layers: int = 12, d: int = 768, ff: int = 3072) -> None:
        super().__init__()
        blocks = []
        for _ in range(layers):
            blocks.append(nn.ModuleDict({
                "q": nn.Linear(d, d), "k": nn.Linear(d, d), "v": nn.Linear(d, d), "o": nn.Linear(d, d),
                "up": nn.Linear(d, ff), "down": nn.Linear(ff, d),
            }))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - not used for timing
        for b in self.blocks:
            h = b["o"](b["v"](x))
            x = b["down"](torch.relu(b["up"](h)))
        return x


def build(layers: int, device: str) -> nn.Module:
    torch.manual_seed(0)
    model = LinearStack(layers)
    with torch.no_grad():  # BERT-like initialisation (std 0.02) plus a few outliers per matrix
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    convert(model, "mapped", modules="re:.*")
    return model.to(device).eval()


def aihwkit_reset(model: nn.Module) -> None:
    """Back to the targets (aihwkit-notes §4.1 reset), dropping aihwkit's per-chip state."""
    with torch.no_grad():
        for _, tile in analog_tiles(model):
            if tile.reference_combined_weights is not None:
                tile.tile.set_weights(tile.reference_combined_weights)
            tile.programmed_weights = None
            tile.drift_noise_parameters = None
            tile.__dict__.pop("alpha", None)
            if "alpha" in tile._buffers:
                tile._buffers["alpha"].fill_(1.0)
            else:
                tile.register_buffer("alpha", torch.ones(1, device=tile.tile.weight.device))
    gc.collect()


def floor_times(model: nn.Module, repeats: int = 3) -> dict[str, float]:
    """Time of the draws and transcendental ops every PCM chip needs, alone, on the same tiles.

    Per device (2 per weight): programming = 2 ``randn`` (programming noise, drift exponent) + 1 ``log``
    (drift-exponent law); each time point = 1 ``randn`` (read noise) + 2 ``pow`` (drift factor, read-noise
    amplitude). Both this toolkit and aihwkit's loop make exactly these draws (the bits of every chip are
    fixed, tests/test_chip_fingerprints.py), so ``aihwkit / floor`` bounds any speed-up that keeps them.
    Since chip scheme ``portable-1`` the toolkit draws with ``device_models.portable`` instead (the same bits
    on every CPU): its floor (``portable_*``) is 2 normals + 1 log + 1 pow (the read-noise amplitude, kept
    per chip) at programming and 1 normal + 1 exp per time point.
    Tiles are shared out among torch's threads as ``ChipProgrammer`` does (one torch thread each; torch's
    ``randn`` is serial), buffers pre-allocated.
    """
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    sizes = sorted((2 * t.tile.weight.numel() for _, t in analog_tiles(model)), reverse=True)
    groups = [sizes[i::threads] for i in range(threads)]
    bufs = [torch.empty(max(g)) for g in groups if g]  # CPU only

    def program(group: list[int], buf: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(0)
        for n in group:
            b = buf[:n]
            torch.randn(n, generator=gen, out=b)
            torch.randn(n, generator=gen, out=b)
            torch.log(b.abs_(), out=b)

    def drift(group: list[int], buf: torch.Tensor) -> None:
        gen = torch.Generator().manual_seed(0)
        for n in group:
            b = buf[:n]
            torch.randn(n, generator=gen, out=b)
            b.abs_()
            torch.pow(1.5, b, out=b)
            torch.pow(b, 0.65, out=b)

    works = {id(b): Workspace() for b in bufs}  # one workspace per thread's buffer

    def program_portable(group: list[int], buf: torch.Tensor) -> None:
        gen, work = torch.Generator().manual_seed(0), works[id(buf)]
        for n in group:
            b = buf[:n]
            portable.normal_(b, gen, work)
            portable.normal_(b, gen, work)
            portable.log_(b.abs_().add_(1e-3), work)
            portable.pow_(b.abs_().add_(1e-3), 0.65, work)  # Q_s, kept per chip

    def drift_portable(group: list[int], buf: torch.Tensor) -> None:
        gen, work = torch.Generator().manual_seed(0), works[id(buf)]
        for n in group:
            b = buf[:n]
            portable.normal_(b, gen, work)
            portable.exp_(b, work)

    def run(fn) -> float:
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(len(bufs)) as pool:
                start = time.perf_counter()
                for fut in [pool.submit(fn, g, b) for g, b in zip(groups, bufs, strict=False)]:
                    fut.result()
                return time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)

    return {"program_s": min(run(program) for _ in range(repeats)),
            "drift_per_t_s": min(run(drift) for _ in range(repeats)),
            "portable_program_s": min(run(program_portable) for _ in range(repeats)),
            "portable_drift_per_t_s": min(run(drift_portable) for _ in range(repeats))}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_chip(model: nn.Module, chips: ChipProgrammer, chip: int, times: list[float],
                     aihwkit_first: bool) -> dict[str, dict[str, list[float]]]:
    """Program chip ``chip`` and drift it to every ``t`` on both paths, alternating step by step.

    aihwkit's path: ``tile.program_weights()`` then ``tile.drift_weights(t)`` on every tile (what
    ``program_analog_weights``/``drift_analog_weights`` do; the RNG seeded with ``torch.manual_seed``).
    Ours: ``ChipProgrammer.program(chip)`` then ``.drift(t)``. Both write the same tiles; each keeps its
    own programmed state, so the steps can alternate (a load change hits both sides alike).
    """
    tiles = [t for _, t in analog_tiles(model)]

    def theirs_program() -> None:
        torch.manual_seed(chip)
        for tile in tiles:
            tile.program_weights()

    def theirs_drift(t: float) -> None:
        for tile in tiles:
            tile.drift_weights(t)

    def ours(fn) -> float:
        chips._remember_versions()  # aihwkit's steps wrote the tiles; the targets are unchanged
        return _timed(fn)

    out = {"aihwkit": {"program": [], "drift": []}, "ours": {"program": [], "drift": []}}
    steps = [("program", theirs_program, lambda: chips.program(chip))]
    steps += [("drift", (lambda t=t: theirs_drift(t)), (lambda t=t: chips.drift(t))) for t in times]
    for kind, theirs_fn, ours_fn in steps:
        if aihwkit_first:
            out["aihwkit"][kind].append(_timed(theirs_fn))
            out["ours"][kind].append(ours(ours_fn))
        else:
            out["ours"][kind].append(ours(ours_fn))
            out["aihwkit"][kind].append(_timed(theirs_fn))
    aihwkit_reset(model)
    chips._remember_versions()
    chips.reset()
    return out


def _compiled_kernels() -> dict:
    """Whether the portable kernels and the Mersenne Twister ran compiled (device_models._fused), for which CPU."""
    from device_models import _fused

    info = {"enabled": _fused.ENABLED, "mersenne_twister": _fused.MT_ENABLED}
    if _fused.numba is not None:
        import llvmlite.binding as llvm

        info["numba"] = _fused.numba.__version__
        info["target_cpu"] = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    return info


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--times", default="1,3600,86400,2592000,31536000")
    ap.add_argument("--repeats", type=int, default=2, help="chips timed per path (alternating)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default="programming", help="results/<out>.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    times = [float(t) for t in args.times.split(",")]

    model = build(args.layers, args.device)
    tiles = analog_tiles(model)
    n_weights = sum(t.tile.weight.numel() for _, t in tiles)
    for _, tile in tiles:
        tile.rpu_config.noise_model = PCMLikeNoiseModel(g_max=25.0)
    chips = ChipProgrammer(model, "pcm", seed=0)

    load = [round(x, 2) for x in os.getloadavg()]
    runs = [interleaved_chip(model, chips, rep, times, aihwkit_first=rep % 2 == 0) for rep in range(args.repeats)]
    floor = floor_times(model) if args.device == "cpu" else None
    load_end = [round(x, 2) for x in os.getloadavg()]

    def summary(name: str) -> dict:
        prog = statistics.median(p for r in runs for p in r[name]["program"])
        drift = statistics.median(d for r in runs for d in r[name]["drift"])
        return {"program_s": prog, "drift_per_t_s": drift, "chip_s": prog + drift * len(times),
                "raw": [r[name] for r in runs]}

    def pair_ratios(kind: str) -> list[float]:
        return [a / o for r in runs for a, o in zip(r["aihwkit"][kind], r["ours"][kind], strict=True)]

    chip_pairs = [(sum(r["aihwkit"]["program"]) + sum(r["aihwkit"]["drift"]))
                  / (sum(r["ours"]["program"]) + sum(r["ours"]["drift"])) for r in runs]
    a, o = summary("aihwkit"), summary("ours")
    speedup = {k: a[k] / o[k] for k in ("program_s", "drift_per_t_s", "chip_s")}
    paired = {"program_s": statistics.median(pair_ratios("program")),
              "drift_per_t_s": statistics.median(pair_ratios("drift")),
              "chip_s": statistics.median(chip_pairs)}
    result = {
        "config": {"layers": args.layers, "tiles": len(tiles), "analog_weights": n_weights, "preset": "mapped",
                   "device_model": "pcm (aihwkit PCMLikeNoiseModel g_max=25)", "times_s": times,
                   "repeats": args.repeats, "device": args.device, "torch_threads": torch.get_num_threads()},
        "aihwkit": a, "ours": o,
        "speedup": speedup, "speedup_median_of_pairs": paired,
        "floor": floor,
        "load_avg_start": load, "load_avg_end": load_end,
        "peak_rss_mb": peak_rss_mb(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "compiled_kernels": _compiled_kernels(),
    }
    rows = [[k, a[k], o[k], f"{speedup[k]:.2f}×", f"{paired[k]:.2f}×"] for k in ("program_s", "drift_per_t_s", "chip_s")]
    print(f"torch kernels {result['cpu_isa']}, compiled portable kernels {result['compiled_kernels']}")
    print(f"programming + drift, {n_weights / 1e6:.1f}M analog weights in {len(tiles)} tiles, "
          f"{args.repeats} chips × {len(times)} time points, steps alternating; load avg {load} → {load_end}")
    print(table(["step", "aihwkit (s, median)", "ours (s, median)", "speed-up (of medians)",
                 "speed-up (median of paired steps)"], rows))
    if floor is not None:
        floor["chip_s"] = floor["program_s"] + floor["drift_per_t_s"] * len(times)
        print("floor (the draws + pow/log alone, same tiles and threads): "
              + ", ".join(f"{k} {floor[k]:.3g} s (aihwkit/floor {a[k] / floor[k]:.2f}×, ours/floor {o[k] / floor[k]:.2f}×)"
                          for k in ("program_s", "drift_per_t_s", "chip_s")))
        floor["portable_chip_s"] = floor["portable_program_s"] + floor["portable_drift_per_t_s"] * len(times)
        print("portable floor (the same draws with device_models.portable, as chip scheme portable-1 needs): "
              + ", ".join(f"{k} {floor['portable_' + k]:.3g} s (ours/portable floor {o[k] / floor['portable_' + k]:.2f}×)"
                          for k in ("program_s", "drift_per_t_s", "chip_s")))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
