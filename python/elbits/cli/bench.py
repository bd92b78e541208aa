"""``elbits bench``: the fused ops against eager PyTorch and torch.compile on this machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict

import torch

from .. import benchmarking  # a module attribute: tests stand in for measure
from .._core import core
from ..benchmarking import CASES, DEFAULT_CASES
from ..errors import InputError
from ._args import device, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time fused vs eager vs torch.compile (fwd+bwd) and print ratios")
    p.add_argument(
        "cases",
        nargs="*",
        metavar="CASE",
        help=f"cases to run (default: {', '.join(DEFAULT_CASES)}); all: {', '.join(CASES)}",
    )
    p.add_argument(
        "--rounds", type=positive_int, default=30, help="interleaved timing rounds per case (default 30)"
    )
    p.add_argument(
        "--device",
        type=device(allow_auto=False),
        default="cpu",
        help="torch device to run on: cpu, cuda or cuda:N (default cpu)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run, check=check)


def check(args: argparse.Namespace) -> None:
    unknown = [n for n in args.cases if n not in CASES]
    if unknown:
        raise InputError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, object]:
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "elbits_cpu_isa": core.cpu_isa(),
        "elbits_parallel": core.parallel_backend(),
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
    }


def run(args: argparse.Namespace) -> int:
    names = args.cases or list(DEFAULT_CASES)
    results = [
        r
        for name in names
        for r in benchmarking.measure(CASES[name](), rounds=args.rounds, device=args.device)
    ]
    if args.json:
        print(
            json.dumps({"machine": machine(args.device), "results": [asdict(r) for r in results]}, indent=2)
        )
        return 0
    m = machine(args.device)
    print(f"{m['cpu']} ({m['cores']} cores), torch {m['torch']}, {m['threads']} threads,")
    print(f"elbits ISA {m['elbits_cpu_isa']}, parallel loops on {m['elbits_parallel']}, device {m['device']}")
    mem = "alloc MB" if args.device == "cpu" else "peak MB"
    gpu = args.device != "cpu"
    kern = f"{'kernel ms':>10}{'GB/s**':>8}" if gpu else ""
    print(f"{'case':<36}{'impl':<9}{'median ms':>10}{'/compile':>10}{'/eager':>8}{mem:>10}{'GB/s*':>8}{kern}")
    for r in results:
        vc = f"{r.vs_compile:.2f}" if r.vs_compile is not None else "-"
        ve = f"{r.vs_eager:.2f}" if r.vs_eager is not None else "-"
        line = f"{r.case:<36}{r.impl:<9}{r.median_ms:>10.3f}{vc:>10}{ve:>8}"
        line += f"{r.allocated_mb:>10.1f}{r.gb_per_s:>8.1f}"
        if gpu and r.kernel_ms is not None:
            line += f"{r.kernel_ms:>10.3f}{r.gb_per_s * r.median_ms / r.kernel_ms:>8.0f}"
        print(line)
    print("* effective GB/s: the bytes an ideal fwd+bwd must move (read the inputs, write the gradient;")
    print("  categorical-256: read the logits twice) / median time")
    if gpu:
        print("** the same bytes / kernel ms: the GPU's own time per call, from the torch profiler")
    return 0
