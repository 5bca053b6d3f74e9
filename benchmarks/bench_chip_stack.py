"""Chip-batched evaluation (``eval_stack``) vs one chip state at a time: cost of the eval-set forwards.

MiniLM-L6 + GRASP (K=16, folded) on the ``mapped`` preset, PCM, one chip at ``--stack`` time points
(1 s … 1 y), ``--n`` SST-2 dev sentences in batches of ``--batch-size``. Per state: one forward per batch
(the engine's default); stacked: the states captured (``chip_stack.linear_maps``) and every batch run once,
repeated K times, with ``bmm`` per analog map. The drifts are outside the timing (the same on both sides);
the capture is inside the stacked side. Both sides alternate; medians of ``--repeats`` rounds, and the
largest logit difference between the two.

    python benchmarks/bench_chip_stack.py [--n 128] [--stack 3] [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import sst2_sentences, sync, table, write_result  # noqa: E402

BASE = "minilm-l6"
TIMES = [1.0, 3600.0, 86400.0, 604800.0, 2592000.0, 31536000.0]


def main(argv: list[str] | None = None) -> dict:
    import torch

    from analog_peft.chip_stack import linear_maps, stacked
    from analog_peft.chips import ChipProgrammer
    from analog_peft.deploy import deploy
    from analog_peft.methods import GraspConfig, attach
    from analog_peft.models import load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--stack", type=int, default=3, help="time points stacked (at most 6)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="chip_stack")
    args = ap.parse_args(argv)
    times = TIMES[: args.stack]
    tok = load_tokenizer(BASE)
    s = sst2_sentences(args.n)
    batches = [{k: v.to(args.device) for k, v in tok(s[i:i + args.batch_size], padding=True, truncation=True,
                                                       max_length=128, return_tensors="pt").items()}
               for i in range(0, args.n, args.batch_size)]
    model = deploy(BASE, None, "periphery", "mapped", 2).model
    net = attach(model, GraspConfig(k=16))
    with torch.no_grad():
        for p in net.adapter_parameters():
            p.add_(0.01)
    net = net.to(args.device).eval()
    chips = ChipProgrammer(model, "pcm", seed=0).program(0)

    def each_state(work):
        """``(seconds, results)`` of ``work()`` at every time point, the drifts outside the timing."""
        spent, out = 0.0, []
        for t in times:
            chips.drift(t)
            sync(args.device)
            start = time.perf_counter()
            out.append(work())
            sync(args.device)
            spent += time.perf_counter() - start
        return spent, out

    def per_state() -> tuple[float, list[torch.Tensor]]:
        with torch.no_grad():
            return each_state(lambda: torch.cat([net(**b).logits for b in batches]))

    def stacked_states() -> tuple[float, list[torch.Tensor]]:
        spent, states = each_state(lambda: linear_maps(net))
        start = time.perf_counter()
        with torch.no_grad(), stacked(net, states) as k:
            parts = [net(**{n: v.repeat(k, 1) for n, v in b.items()}).logits.split(len(b["input_ids"]))
                     for b in batches]
        sync(args.device)
        spent += time.perf_counter() - start
        return spent, [torch.cat([p[j] for p in parts]) for j in range(k)]

    per_state()
    stacked_states()  # warm-up
    runs: dict[str, list[float]] = {"per state": [], "stacked": []}
    diff = 0.0
    for _ in range(args.repeats):
        a, la = per_state()
        b, lb = stacked_states()
        runs["per state"].append(a)
        runs["stacked"].append(b)
        diff = max(diff, max(float((x - y).abs().max()) for x, y in zip(la, lb, strict=True)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["stacked"] / med["per state"]
    print(f"chip-batched eval, {BASE} + GRASP mapped, PCM, {args.stack} time points, {args.n} sentences, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(table(["", "s (all states)", "vs per state"], [["per state", med["per state"], 1.0],
                                                         ["stacked", med["stacked"], ratio]]))
    print(f"largest logit difference: {diff:.3g}")
    result = {"config": vars(args), "median_s": med, "stacked_vs_per_state": ratio, "max_logit_diff": diff,
              "runs": runs}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
